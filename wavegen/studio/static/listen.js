// The listening test page (listen.html): pairs of clips as A and B, two questions each, answers posted
// to /api/listening/NAME/answer. The page never knows which clip is the rendering: the server works it
// out from the test's files. No library; shares nothing with studio.js.
"use strict";

const $ = (id) => document.getElementById(id);
let test = null, index = 0, picks = {}, played = {}, urls = [];

function listenerId() {  // opaque, kept in this browser so that one listener's answers count once per pair
  let id = localStorage.getItem("wavegen-listener");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("wavegen-listener", id);
  }
  return id;
}

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    try { message = (await r.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return r;
}

function fail(e) { $("error").textContent = String(e.message || e); }

function show(section) {
  for (const id of ["choose", "pair", "done"]) $(id).hidden = id !== section;
}

async function start(name) {
  test = await (await api(`/api/listening/${encodeURIComponent(name)}`)).json();
  index = 0;
  showPair();
}

async function showPair() {
  const pair = test.pairs[index];
  picks = {}; played = {};
  $("progress").textContent = `pair ${index + 1} of ${test.pairs.length}`;
  for (const b of document.querySelectorAll("button[data-q]")) b.classList.remove("chosen");
  urls.forEach((u) => URL.revokeObjectURL(u));
  urls = [];
  for (const side of ["A", "B"]) {  // fetched whole, so seeking works without range requests
    const blob = await (await api(pair[side].url)).blob();
    const url = URL.createObjectURL(blob);
    urls.push(url);
    $(`audio-${side}`).src = url;
  }
  update();
  show("pair");
}

function update() {
  const ready = played.A && played.B && picks.rendering && picks.preferred;
  $("next").disabled = !ready;
  $("hint").textContent = ready ? "" : "play both clips, then answer both questions";
}

async function next() {
  const pair = test.pairs[index];
  const file = (v) => (v === "none" ? "none" : pair[v].file);
  $("next").disabled = true;
  await api(`/api/listening/${encodeURIComponent(test.name)}/answer`, {
    listener: listenerId(), pair: pair.pair, a: pair.A.file,
    rendering_pick: file(picks.rendering), preferred: file(picks.preferred)});
  index += 1;
  if (index < test.pairs.length) return showPair();
  for (const side of ["A", "B"]) $(`audio-${side}`).pause();
  const s = await (await api(`/api/listening/${encodeURIComponent(test.name)}/summary?listener=${listenerId()}`)).json();
  const pct = (x) => (x === null ? "-" : x.toFixed(2));
  $("summary").textContent =
    `You picked the real rendering in ${s.you.correct} of ${s.you.answers} pairs.\n\n` +
    `All listeners so far (${s.listeners}): ${s.correct} of ${s.answers} answers picked the rendering, ` +
    `share ${pct(s.share)}` + (s.ci95 ? `, 95 % interval ${pct(s.ci95[0])} to ${pct(s.ci95[1])}` : "") +
    `.\n0.5 means the WaveNet cannot be told from the rendering; 1 that it always can.\n` +
    `Preferred the WaveNet: ${s.preferred.wavenet} of ${s.answers}.`;
  show("done");
}

async function main() {
  for (const side of ["A", "B"]) {
    const audio = $(`audio-${side}`), other = $(`audio-${side === "A" ? "B" : "A"}`);
    audio.addEventListener("play", () => { other.pause(); played[side] = true; update(); });
  }
  for (const b of document.querySelectorAll("button[data-q]")) {
    b.addEventListener("click", () => {
      picks[b.dataset.q] = b.dataset.v;
      for (const o of document.querySelectorAll(`button[data-q="${b.dataset.q}"]`)) o.classList.toggle("chosen", o === b);
      update();
    });
  }
  $("next").addEventListener("click", () => next().catch((e) => { fail(e); update(); }));
  const {tests} = await (await api("/api/listening")).json();
  const wanted = new URLSearchParams(location.search).get("test");
  if (wanted || tests.length === 1) return start(wanted || tests[0].name);
  if (!tests.length) {
    $("error").textContent = "No listening tests here yet: make one with `wavegen listening-test make`.";
    return;
  }
  for (const t of tests) {
    const b = document.createElement("button");
    b.textContent = `${t.title} (${t.pairs} pairs)`;
    b.addEventListener("click", () => start(t.name).catch(fail));
    $("tests").append(b);
  }
  show("choose");
}

main().catch(fail);
