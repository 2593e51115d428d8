/* The blinded study page of t2i_lib.report.human_eval (inlined into index.html at build time).
 *
 * Works from file:// with no network: the study (trial ids, captions, image file names) is embedded as JSON;
 * images sit beside the page.  Per rater id, the trial order and the side each option is shown on come from a
 * seeded generator (FNV-1a 32 of "<version>|<rater id>" seeding mulberry32): the Python module implements the
 * same generator and checks every answer file against it.  Progress lives in localStorage, so a reload resumes.
 */
(function () {
  "use strict";

  var STUDY = JSON.parse(document.getElementById("study-data").textContent);
  var STORE_KEY = "t2i-human-eval/" + STUDY.version;
  var ANSWERS_FORMAT = "t2i-human-eval-answers/1";
  var RATER_RE = /^[A-Za-z0-9_.-]{1,40}$/;
  var N = STUDY.trials.length;

  function $(id) { return document.getElementById(id); }

  // ---- the seeded schedule (mirrored in human_eval.py: rater_schedule) --------------------------------------
  function fnv1a32(str) {
    var bytes = new TextEncoder().encode(str);
    var h = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      h ^= bytes[i];
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  function mulberry32(a) {
    return function () {
      a |= 0;
      a = (a + 0x6D2B79F5) | 0;
      var t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function schedule(rater) {
    var rng = mulberry32(fnv1a32(STUDY.version + "|" + rater));
    var order = [];
    for (var i = 0; i < N; i++) order.push(i);
    for (var k = N - 1; k > 0; k--) {
      var j = Math.floor(rng() * (k + 1));
      var tmp = order[k]; order[k] = order[j]; order[j] = tmp;
    }
    return order.map(function (idx) {
      var left = rng() < 0.5 ? "a" : "b";
      return { index: idx, shown: [left, left === "a" ? "b" : "a"] };
    });
  }

  // ---- state ---------------------------------------------------------------------------------------------
  var storageOk = true;
  function load() {
    try {
      var raw = window.localStorage.getItem(STORE_KEY);
      if (!raw) return null;
      var s = JSON.parse(raw);
      if (!s || typeof s.rater_id !== "string" || !RATER_RE.test(s.rater_id) || !Array.isArray(s.answers)) return null;
      return s;
    } catch (e) { storageOk = false; return null; }
  }
  function save() {
    try { window.localStorage.setItem(STORE_KEY, JSON.stringify(state)); }
    catch (e) { storageOk = false; }
  }

  var state = null;
  var plan = null;
  var shownAt = 0;
  var current = null;

  // ---- screens -------------------------------------------------------------------------------------------
  function show(id) {
    ["intro", "trial", "done"].forEach(function (s) { $(s).hidden = (s !== id); });
    document.body.setAttribute("data-screen", id);
  }

  function status(msg) { $("status").textContent = msg; }

  function updateProgress() {
    var k = state.answers.length;
    var bar = $("progress");
    bar.max = N;
    bar.value = k;
    $("progress-text").textContent = k < N ? "Trial " + (k + 1) + " of " + N : "All " + N + " trials answered";
    $("rater-label").textContent = "Rater: " + state.rater_id;
  }

  function image(src, alt) {
    var fig = document.createElement("figure");
    fig.className = "shot";
    var img = document.createElement("img");
    img.src = src;
    img.alt = alt;
    img.decoding = "sync";
    fig.appendChild(img);
    return fig;
  }

  function renderTrial() {
    var k = state.answers.length;
    if (k >= N) { finish(); return; }
    var step = plan[k];
    var t = STUDY.trials[step.index];
    current = { step: step, trial: t, position: k };
    var sec = $("trial");
    sec.setAttribute("data-trial-id", t.id);
    sec.setAttribute("data-kind", t.kind);
    var q = $("question");
    var caps = $("captions");
    caps.textContent = "";
    if (t.kind === "consistency") {
      q.textContent = "Each side shows two images drawn from two different descriptions of the same picture. " +
                      "Which side's two images show the same thing more clearly?";
    } else {
      q.textContent = "Which image matches this description better?";
    }
    t.captions.forEach(function (c, i) {
      var p = document.createElement("p");
      p.className = "caption";
      var label = document.createElement("strong");
      label.textContent = t.captions.length > 1 ? "Description " + (i + 1) + ": " : "Description: ";
      p.appendChild(label);
      p.appendChild(document.createTextNode("\u201c" + c + "\u201d"));
      caps.appendChild(p);
    });
    ["left", "right"].forEach(function (side, s) {
      var box = $("imgs-" + side);
      box.textContent = "";
      var files = t.options[step.shown[s]];
      files.forEach(function (src, i) {
        var alt = t.kind === "consistency"
          ? "Generated image for description " + (i + 1) + ", " + side + " side"
          : "Generated image for the description, " + side + " side";
        var fig = image(src, alt);
        if (t.kind === "consistency") {
          var cap = document.createElement("figcaption");
          cap.textContent = "for description " + (i + 1);
          fig.appendChild(cap);
        }
        box.appendChild(fig);
      });
    });
    updateProgress();
    show("trial");
    shownAt = performance.now();
  }

  function answer(kind) {
    if (!current || $("trial").hidden) return;
    var rt = performance.now() - shownAt;
    var shown = current.step.shown;
    var chosen = kind === "left" ? shown[0] : kind === "right" ? shown[1] : null;
    state.answers.push({
      trial: current.trial.id, position: current.position, shown: shown.slice(), answer: kind,
      chosen: chosen, rt_ms: Math.round(rt * 10) / 10
    });
    current = null;
    save();
    var k = state.answers.length;
    status(kind === "cant_tell" ? "Answered: can't tell." : "Answered: " + kind + " side.");
    if (k >= N) finish(); else renderTrial();
  }

  function finish() {
    if (!state.finished_at) { state.finished_at = new Date().toISOString(); save(); }
    updateProgress();
    show("done");
    $("download").focus();
  }

  function payload() {
    return {
      format: ANSWERS_FORMAT, study_version: STUDY.version, rater_id: state.rater_id,
      started_at: state.started_at, finished_at: state.finished_at || null,
      n_trials: N, complete: state.answers.length === N,
      page: { user_agent: navigator.userAgent, viewport: [window.innerWidth, window.innerHeight],
              storage: storageOk },
      answers: state.answers
    };
  }

  function download() {
    var body = JSON.stringify(payload(), null, 1);
    var blob = new Blob([body], { type: "application/json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "answers-" + state.rater_id + "-" + STUDY.version.slice(0, 8) +
                 (state.answers.length === N ? "" : "-partial") + ".json";
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    status("Answers file saved to your downloads: " + a.download);
  }

  function start(rater) {
    state = load();
    if (!state || state.rater_id !== rater) {
      state = { rater_id: rater, started_at: new Date().toISOString(), finished_at: null, answers: [] };
      save();
    }
    plan = schedule(state.rater_id);
    renderTrial();
    if (!storageOk) status("This browser does not keep progress for local files: finish in one sitting.");
  }

  // ---- wiring --------------------------------------------------------------------------------------------
  $("total-trials").textContent = String(N);
  $("start-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var r = $("rater-id").value.trim();
    if (!RATER_RE.test(r)) {
      $("rater-error").textContent = "Use 1 to 40 letters, digits, dots, dashes or underscores.";
      $("rater-id").setAttribute("aria-invalid", "true");
      $("rater-id").focus();
      return;
    }
    start(r);
  });
  document.querySelectorAll("button[data-answer]").forEach(function (b) {
    b.addEventListener("click", function () { answer(b.getAttribute("data-answer")); });
  });
  $("download").addEventListener("click", download);
  $("download-partial").addEventListener("click", download);
  $("restart").addEventListener("click", function () {
    if (!window.confirm("Clear this browser's saved answers for this study and start again?")) return;
    try { window.localStorage.removeItem(STORE_KEY); } catch (e) { /* nothing kept */ }
    window.location.reload();
  });
  document.addEventListener("keydown", function (e) {
    if (e.repeat || e.altKey || e.ctrlKey || e.metaKey || $("trial").hidden) return;
    var k = e.key;
    var kind = (k === "ArrowLeft" || k === "1") ? "left" : (k === "ArrowRight" || k === "2") ? "right"
             : (k === "ArrowDown" || k === "0") ? "cant_tell" : null;
    if (kind) { e.preventDefault(); answer(kind); }
  });

  var saved = load();
  var fromUrl = new URLSearchParams(window.location.search).get("rater");
  if (saved) {
    start(saved.rater_id);
    if (saved.answers.length > 0 && saved.answers.length < N) {
      status("Welcome back, " + saved.rater_id + ": your " + saved.answers.length +
             " earlier answers are kept; continuing at trial " + (saved.answers.length + 1) + ".");
    }
  } else {
    if (fromUrl && RATER_RE.test(fromUrl)) $("rater-id").value = fromUrl;
    show("intro");
  }
})();
