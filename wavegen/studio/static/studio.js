// wavegen studio: the page. Plain JavaScript, no library, no build step.
//
// Layout of this file:
//   1. constants and the state object
//   2. small helpers (DOM, HTTP, keys)
//   3. the roll's geometry (tick/key <-> pixels)
//   4. drawing (background, spectrogram, grid, notes, cursor, keyboard, ruler)
//   5. editing the roll with the mouse
//   6. keeping the roll and the text in step
//   7. files: open, drop, save
//   8. audio: the keyboard's tones, WAV blobs, the take and the A/B switch
//   9. live playback over the WebSocket (sketch and radio)
//  10. the spectrogram
//  11. compose
//  12. keyboard shortcuts, controls and start-up
//
// Notes are runs {key, start, end} in ticks, end exclusive, exactly as the server's sketch has them
// (docs/studio.md). Key k is MIDI pitch 21 + k and is written as the character chr(33 + k).

"use strict";

// ---------------------------------------------------------------------------------------------
// 1. constants and state

const N_KEYS = 88;
const ROW_H = 7;                 // pixels per key row
const ROLL_H = N_KEYS * ROW_H;
const SECTION_BAND_H = 11;      // the ruler's top band, where the composer's sections show
const EDGE_PX = 6;               // the last pixels of a note grab its end instead of its body
const DRAG_THRESHOLD_PX = 4;     // a press that moves less than this is a click
const ZOOM_MIN = 1, ZOOM_MAX = 64, ZOOM_STEP = 1.25;
const TEXT_DEBOUNCE_MS = 300;
const UNDO_DEPTH = 100;

// Live playback: when to start, see shouldStart().
const START_MARGIN_S = 0.3;      // the last sample must arrive this long before it is needed
const MIN_BUFFER_S = 0.15;       // never start with less than this buffered
const RADIO_FAST_BUFFER_S = 1;   // radio, generation at least real time
const RADIO_SLOW_BUFFER_S = 3;   // radio, generation slower than real time
// The radio keeps the last limits.max_seconds of its music in the roll, the text and the take: past
// that, the oldest RADIO_TRIM_FRACTION of it is dropped at once (so the text is rewritten to the
// server's limit, and the page's memory stays flat however long the radio plays).
const RADIO_TRIM_FRACTION = 0.1;
const SCHEDULE_LEAD_S = 0.05;    // the first chunk is scheduled this far ahead of the audio clock
const RECENT_S = 2;              // the window of the recent generation rate, see planningRate()

const state = {
  info: null,                    // GET /api/info
  tickMs: 50,
  nTicks: 0,
  meta: {},                      // header keys other than tick_ms and ticks
  notes: [],                     // runs, kept sorted by start then key
  selected: new Set(),           // note objects of `notes`
  lastLength: 1,                 // ticks: the length a click gives a new note
  sections: [],                  // [[letter, start, end], ...] from the composer
  undo: [],                      // snapshots of the notes before each roll edit
  fileBase: "sketch",            // name for saved files
  radioDropTicks: 0,             // ticks of this radio dropped from the front of the roll, see trimRadio()
  view: { pxPerTick: 12, scrollPx: 0, width: 800, showSpectrogram: true },
  drag: null,                    // the mouse gesture in progress on the roll
  syncSeq: 0,                    // every roll->text or text->roll request; stale answers are dropped
  textTimer: null,
  textError: null,               // {line, column, message} of the text's parse error
  takes: { wavenet: null, soundfont: null },         // {url, blob, durationS, text}
  spectrograms: { wavenet: null, soundfont: null },  // {hopS, nFrames, image}
  source: "wavenet",             // which take the A/B switch shows
  live: null,                    // the WebSocket session in progress, see startLive()
  audioCtx: null,
  cursorS: null,                 // playback position in seconds of the roll (tick 0 = 0 s)
  cursorLoop: false,
  busy: false,                   // a compose or render request is out
  keyDown: null,                 // the keyboard key being sounded (for its highlight)
};

// What the browser test reads.
window.studio = {
  firstSoundMs: null, stalls: 0, samplesReceived: 0, playing: false, done: false,
  nSamples: null, sampleRate: null, state,
  firstChunkMs: null, doneMs: null,  // from pressing play: the first audio received, the last (benchmarks)
};

// ---------------------------------------------------------------------------------------------
// 2. helpers

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

// fetch() that throws ApiError with the server's one-line error.
async function api(path, { json, body, headers = {}, method = "POST", as = "json" } = {}) {
  const init = { method, headers: { ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const res = await fetch(path, init);
  if (!res.ok) {
    let payload = null;
    try { payload = await res.json(); } catch (_) { /* not JSON: keep the status */ }
    if (!payload && res.status === 413) payload = { error: "too large for the server's upload limit" };
    throw new ApiError(res.status, payload);
  }
  if (as === "blob") return res.blob();
  return res.json();
}

const getInfo = () => api("/api/info", { method: "GET" });

function setStatus(text, bad = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

function keyName(key) {
  const pitch = 21 + key;
  const names = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];
  return names[pitch % 12] + (Math.floor(pitch / 12) - 1);
}

const isBlackKey = (key) => [1, 3, 6, 8, 10].includes((21 + key) % 12);
const isC = (key) => (21 + key) % 12 === 0;
const keyFrequency = (key) => 440 * Math.pow(2, (21 + key - 69) / 12);
const secondsOfTicks = (ticks) => ticks * state.tickMs / 1000;
const ticksOfSeconds = (s) => s * 1000 / state.tickMs;
const lastEnd = (notes) => notes.reduce((m, n) => Math.max(m, n.end), 0);
const fmt = (x, digits = 1) => Number(x).toFixed(digits);
const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// The seed in `input`, or a new random one when it is empty (the server's default seed is always 0).
function seedOf(input) {
  const v = input.value.trim();
  return v === "" ? Math.floor(Math.random() * 2 ** 31) : Number(v);
}

// ---------------------------------------------------------------------------------------------
// 3. geometry: x is in CSS pixels of the visible roll, y from the top (key 87 = C8 at the top)

const xOfTick = (tick) => tick * state.view.pxPerTick - state.view.scrollPx;
const xOfSeconds = (s) => xOfTick(ticksOfSeconds(s));
const tickOfX = (x) => (x + state.view.scrollPx) / state.view.pxPerTick;
const yOfKey = (key) => (N_KEYS - 1 - key) * ROW_H;
const keyOfY = (y) => clamp(N_KEYS - 1 - Math.floor(y / ROW_H), 0, N_KEYS - 1);

// Ticks the roll can scroll over: the sketch, the take, and room to add notes after them.
function contentTicks() {
  const take = state.takes[state.source];
  const takeTicks = take ? ticksOfSeconds(take.durationS) : 0;
  const visible = state.view.width / state.view.pxPerTick;
  return Math.ceil(Math.max(state.nTicks, lastEnd(state.notes), takeTicks) + Math.max(visible * 0.5, 40));
}

// ---------------------------------------------------------------------------------------------
// 4. drawing

let redrawQueued = false;
function redraw() {
  if (redrawQueued) return;
  redrawQueued = true;
  requestAnimationFrame(() => {
    redrawQueued = false;
    drawBackground();
    drawRoll();
    drawRuler();
  });
}

// Size a canvas for the device's pixel ratio and return its 2D context in CSS pixels.
function fitCanvas(canvas, cssW, cssH) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(cssW * dpr)), h = Math.max(1, Math.round(cssH * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
    canvas.style.height = cssH + "px";
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return g;
}

// The bottom layer (#spectrogram): key rows shaded, and the spectrogram of the shown take over them.
function drawBackground() {
  const canvas = $("spectrogram");
  const g = fitCanvas(canvas, state.view.width, ROLL_H);
  for (let key = 0; key < N_KEYS; key++) {
    g.fillStyle = isBlackKey(key) ? "#e9e5de" : "#fbfaf8";
    g.fillRect(0, yOfKey(key), state.view.width, ROW_H);
  }
  const spec = state.spectrograms[state.source];
  if (spec && state.view.showSpectrogram) {
    const x0 = xOfSeconds(0);
    g.imageSmoothingEnabled = false;
    g.drawImage(spec.image, x0, 0, xOfSeconds(spec.nFrames * spec.hopS) - x0, ROLL_H);
    canvas.dataset.drawn = "1";
  } else {
    delete canvas.dataset.drawn;
  }
}

// The top layer (#roll): grid, notes, selection box, cursor. Transparent, so the spectrogram shows.
function drawRoll() {
  const { width, pxPerTick } = state.view;
  const g = fitCanvas($("roll"), width, ROLL_H);
  g.clearRect(0, 0, width, ROLL_H);
  const onSpectrogram = Boolean(state.spectrograms[state.source] && state.view.showSpectrogram);
  drawGrid(g, width, pxPerTick, onSpectrogram);
  drawNotes(g, width, onSpectrogram);
  drawBox(g);
  drawCursor(g);
}

function drawGrid(g, width, pxPerTick, onSpectrogram) {
  const first = Math.max(0, Math.floor(tickOfX(0)));
  const last = Math.ceil(tickOfX(width));
  const alpha = onSpectrogram ? 0.35 : 1;
  for (let t = first; t <= last; t++) {
    let color = null;
    if (t % 16 === 0) color = `rgba(120,110,100,${0.55 * alpha})`;
    else if (t % 4 === 0 && pxPerTick >= 3) color = `rgba(150,140,130,${0.35 * alpha})`;
    else if (pxPerTick >= 8) color = `rgba(180,170,160,${0.18 * alpha})`;
    if (!color) continue;
    g.fillStyle = color;
    g.fillRect(Math.round(xOfTick(t)), 0, 1, ROLL_H);
  }
  // a line under every C, so octaves are easy to count
  g.fillStyle = `rgba(120,110,100,${0.45 * alpha})`;
  for (let key = 0; key < N_KEYS; key++) {
    if (isC(key)) g.fillRect(0, yOfKey(key) + ROW_H - 1, width, 1);
  }
  // the end of the sketch
  if (state.nTicks > 0) {
    g.fillStyle = "rgba(60,60,160,0.6)";
    g.fillRect(Math.round(xOfTick(state.nTicks)), 0, 2, ROLL_H);
  }
}

function drawNotes(g, width, onSpectrogram) {
  const t0 = tickOfX(0), t1 = tickOfX(width);
  for (const n of state.notes) {
    if (n.end < t0 || n.start > t1) continue;
    const x = xOfTick(n.start), w = Math.max(2, (n.end - n.start) * state.view.pxPerTick);
    const y = yOfKey(n.key);
    const selected = state.selected.has(n);
    if (onSpectrogram) {
      // a dark rim under a light outline: visible on the bright and the dark parts of the spectrogram
      g.fillStyle = selected ? "rgba(90,170,255,0.45)" : "rgba(255,255,255,0.2)";
      g.fillRect(x, y, w, ROW_H);
      g.strokeStyle = "rgba(0,0,0,0.7)";
      g.lineWidth = 1;
      g.strokeRect(x - 0.5, y - 0.5, w + 1, ROW_H + 1);
      g.strokeStyle = selected ? "#7cc4ff" : "#ffffff";
    } else {
      g.fillStyle = selected ? "#2f7fd8" : "#c8622a";
      g.fillRect(x, y, w, ROW_H);
      g.strokeStyle = selected ? "#134a8a" : "#7a3510";
    }
    g.lineWidth = 1;
    g.strokeRect(x + 0.5, y + 0.5, w - 1, ROW_H - 1);
  }
}

function drawBox(g) {
  const d = state.drag;
  if (!d || d.kind !== "box") return;
  g.fillStyle = "rgba(47,127,216,0.12)";
  g.strokeStyle = "#2f7fd8";
  const x = Math.min(d.x0, d.x), y = Math.min(d.y0, d.y);
  const w = Math.abs(d.x - d.x0), h = Math.abs(d.y - d.y0);
  g.fillRect(x, y, w, h);
  g.strokeRect(x + 0.5, y + 0.5, w, h);
}

function drawCursor(g) {
  if (state.cursorS === null) return;
  const x = Math.round(xOfSeconds(state.cursorS));
  if (x < -2 || x > state.view.width + 2) return;
  g.fillStyle = "#e0262d";
  g.fillRect(x - 1, 0, 2, ROLL_H);
}

function drawKeyboard() {
  const canvas = $("keyboard");
  const w = canvas.clientWidth || 44;
  const g = fitCanvas(canvas, w, ROLL_H);
  g.clearRect(0, 0, w, ROLL_H);
  g.font = "7px system-ui, sans-serif";
  g.textBaseline = "middle";
  for (let key = 0; key < N_KEYS; key++) {
    const y = yOfKey(key);
    const down = state.keyDown === key;
    g.fillStyle = down ? "#f0b48e" : "#ffffff";
    g.fillRect(0, y, w, ROW_H);
    if (isBlackKey(key)) {
      g.fillStyle = down ? "#c8622a" : "#2b2b2b";
      g.fillRect(0, y, w * 0.62, ROW_H);
    }
    g.fillStyle = "#bbb";
    g.fillRect(0, y + ROW_H - 1, w, isC(key) ? 1 : 0.4);
    if (isC(key)) {
      g.fillStyle = "#555";
      g.fillText(keyName(key), w - 18, y + ROW_H / 2);
    }
  }
}

function drawRuler() {
  const canvas = $("ruler");
  const w = state.view.width, h = canvas.clientHeight || 28;
  const g = fitCanvas(canvas, w, h);
  g.fillStyle = "#ece8e1";
  g.fillRect(0, 0, w, h);
  drawSections(g);
  // a label every 1, 2, 5, 10 ... seconds, whatever keeps them 60 px apart
  const pxPerSecond = state.view.pxPerTick * 1000 / state.tickMs;
  const step = [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300].find((s) => s * pxPerSecond >= 60) || 600;
  const s0 = Math.max(0, Math.floor(tickOfX(0) * state.tickMs / 1000 / step) * step);
  const s1 = tickOfX(w) * state.tickMs / 1000;
  g.fillStyle = "#555";
  g.font = "10px system-ui, sans-serif";
  g.textBaseline = "middle";
  for (let s = s0; s <= s1; s += step) {
    const x = Math.round(xOfSeconds(s));
    g.fillRect(x, h - 6, 1, 6);
    g.fillText(s >= 60 ? `${Math.floor(s / 60)}:${fmt(s % 60, step < 1 ? 2 : 0).padStart(2, "0")}` : `${s}s`,
      x + 3, SECTION_BAND_H + (h - SECTION_BAND_H) / 2);
  }
  if (state.cursorS !== null) {
    g.fillStyle = "#e0262d";
    g.fillRect(Math.round(xOfSeconds(state.cursorS)) - 1, 0, 2, h);
  }
}

// The composer's sections (A, B, ...) as bands along the top of the ruler.
function drawSections(g) {
  const h = SECTION_BAND_H;
  const colors = ["rgba(200,98,42,0.25)", "rgba(47,127,216,0.25)", "rgba(60,160,90,0.25)", "rgba(150,80,170,0.25)"];
  g.font = "bold 10px system-ui, sans-serif";
  g.textBaseline = "middle";
  for (const [letter, start, end] of state.sections) {
    const x = xOfTick(start), x1 = xOfTick(end);
    if (x1 < 0 || x > state.view.width) continue;
    g.fillStyle = colors[(letter.toUpperCase().charCodeAt(0) - 65) % colors.length] || colors[0];
    g.fillRect(x, 0, x1 - x, h);
    g.fillStyle = "#333";
    g.fillText(letter, Math.max(x, 0) + 3, h / 2);
  }
}

function updateRollInfo() {
  const s = secondsOfTicks(state.nTicks);
  const sel = state.selected.size ? ` · ${state.selected.size} selected` : "";
  const dropped = state.radioDropTicks ? ` · the radio's first ${fmt(secondsOfTicks(state.radioDropTicks), 0)} s dropped` : "";
  $("roll-info").textContent =
    `${state.notes.length} notes · ${state.nTicks} ticks (${fmt(s, 2)} s at ${state.tickMs} ms)${sel}${dropped}`;
}

function updateScrollExtent() {
  $("roll-scroll-inner").style.width = Math.ceil(contentTicks() * state.view.pxPerTick) + "px";
}

function setScroll(px) {
  updateScrollExtent();
  const scroller = $("roll-scroll");
  scroller.scrollLeft = Math.max(0, px);
  state.view.scrollPx = scroller.scrollLeft;
  redraw();
}

// Zoom time about the pixel `anchorX` (it keeps showing the same tick).
function zoom(factor, anchorX = state.view.width / 2) {
  const tick = tickOfX(anchorX);
  state.view.pxPerTick = clamp(state.view.pxPerTick * factor, ZOOM_MIN, ZOOM_MAX);
  setScroll(tick * state.view.pxPerTick - anchorX);
}

// Keep the cursor in view while playing: page on when it nears the right edge.
function followCursor() {
  if (state.cursorS === null) return;
  const x = xOfSeconds(state.cursorS);
  if (x > state.view.width * 0.9 || x < 0) setScroll(state.view.scrollPx + x - state.view.width * 0.1);
}

// ---------------------------------------------------------------------------------------------
// 5. editing the roll with the mouse

function pointerPos(e) {
  const r = $("roll").getBoundingClientRect();
  return { x: e.clientX - r.left, y: e.clientY - r.top };
}

// The note under a point, and whether the point is on its right edge.
function hitTest({ x, y }) {
  const key = keyOfY(y);
  for (let i = state.notes.length - 1; i >= 0; i--) {
    const n = state.notes[i];
    if (n.key !== key) continue;
    const x0 = xOfTick(n.start), x1 = xOfTick(n.end);
    if (x >= x0 && x < x1) {
      const edge = x >= x1 - Math.min(EDGE_PX, (x1 - x0) / 2);
      return { note: n, edge };
    }
  }
  return null;
}

// The sketch as it is before an edit: its notes and its header (tick length, title and the other keys),
// so that undo also takes back a header changed in the text, and the file name the title gave.
const snapshot = () => ({
  notes: state.notes.map((n) => ({ ...n })), nTicks: state.nTicks,
  tickMs: state.tickMs, meta: structuredClone(state.meta), fileBase: state.fileBase,
});

function pushUndo(snap) {
  state.undo.push(snap);
  if (state.undo.length > UNDO_DEPTH) state.undo.shift();
}

function undo() {
  const snap = state.undo.pop();
  if (!snap) return;
  state.notes = snap.notes;
  state.nTicks = snap.nTicks;
  state.tickMs = snap.tickMs;
  state.meta = snap.meta;
  state.fileBase = snap.fileBase;
  state.selected.clear();
  commitRoll();
}

function selectOnly(note) {
  state.selected.clear();
  if (note) state.selected.add(note);
}

function onRollPointerDown(e) {
  if (e.button !== 0) return;
  const roll = $("roll");
  roll.focus();
  roll.setPointerCapture(e.pointerId);
  const p = pointerPos(e);
  const hit = hitTest(p);
  if (hit && e.shiftKey) {
    // shift-click toggles one note in or out of the selection
    if (state.selected.has(hit.note)) state.selected.delete(hit.note);
    else state.selected.add(hit.note);
    state.drag = null;
  } else if (hit) {
    const wasSelected = state.selected.has(hit.note);
    if (!wasSelected) selectOnly(hit.note);
    state.drag = {
      kind: hit.edge ? "resize" : "move", note: hit.note, wasSelected, x0: p.x, y0: p.y, moved: false,
      before: snapshot(),
      origin: [...state.selected].map((n) => ({ n, key: n.key, start: n.start, end: n.end })),
    };
  } else {
    state.drag = {
      kind: "empty", x0: p.x, y0: p.y, x: p.x, y: p.y,
      base: e.shiftKey ? new Set(state.selected) : new Set(),
    };
  }
  updateRollInfo();
  redraw();
}

function onRollPointerMove(e) {
  const p = pointerPos(e);
  const d = state.drag;
  if (!d) {
    const hit = hitTest(p);
    const roll = $("roll");
    roll.classList.toggle("over-note", Boolean(hit && !hit.edge));
    roll.classList.toggle("over-edge", Boolean(hit && hit.edge));
    roll.title = hit ? `${keyName(hit.note.key)}, ticks ${hit.note.start}–${hit.note.end}` : keyName(keyOfY(p.y));
    return;
  }
  if (d.kind === "empty" && Math.hypot(p.x - d.x0, p.y - d.y0) >= DRAG_THRESHOLD_PX) d.kind = "box";
  if (d.kind === "box") dragBox(d, p);
  else if (d.kind === "move") dragMove(d, p);
  else if (d.kind === "resize") dragResize(d, p);
  redraw();
}

function dragBox(d, p) {
  d.x = p.x;
  d.y = p.y;
  const t0 = tickOfX(Math.min(d.x0, d.x)), t1 = tickOfX(Math.max(d.x0, d.x));
  const kTop = keyOfY(Math.min(d.y0, d.y)), kBottom = keyOfY(Math.max(d.y0, d.y));
  state.selected = new Set(d.base);
  for (const n of state.notes) {
    if (n.key >= kBottom && n.key <= kTop && n.end > t0 && n.start < t1) state.selected.add(n);
  }
  updateRollInfo();
}

function dragMove(d, p) {
  let dt = Math.round((p.x - d.x0) / state.view.pxPerTick);
  let dk = Math.round((d.y0 - p.y) / ROW_H);
  // keep the whole selection on the keyboard and after tick 0
  const minStart = Math.min(...d.origin.map((o) => o.start));
  const minKey = Math.min(...d.origin.map((o) => o.key));
  const maxKey = Math.max(...d.origin.map((o) => o.key));
  dt = Math.max(dt, -minStart);
  dk = clamp(dk, -minKey, N_KEYS - 1 - maxKey);
  for (const o of d.origin) {
    o.n.start = o.start + dt;
    o.n.end = o.end + dt;
    o.n.key = o.key + dk;
  }
  if (dk !== 0 && d.lastDk !== dk) tone(d.note.key);
  d.lastDk = dk;
  d.moved = d.moved || dt !== 0 || dk !== 0;
}

function dragResize(d, p) {
  const dt = Math.round((p.x - d.x0) / state.view.pxPerTick);
  for (const o of d.origin) o.n.end = Math.max(o.start + 1, o.end + dt);
  d.moved = d.moved || dt !== 0;
}

function onRollPointerUp(e) {
  const d = state.drag;
  state.drag = null;
  if (!d) return;
  if (d.kind === "empty") {
    addNoteAt(pointerPos(e));
  } else if (d.kind === "move" || d.kind === "resize") {
    if (d.moved) {
      pushUndo(d.before);
      commitRoll();
    } else if (d.wasSelected) {
      selectOnly(d.note);     // a plain click on a selected note selects it alone
    }
    state.lastLength = d.note.end - d.note.start;   // the next click adds a note this long
  }
  updateRollInfo();
  redraw();
}

// A click on an empty cell: a note of the last length used, cut short before the key's next note.
function addNoteAt(p) {
  const key = keyOfY(p.y);
  const start = Math.max(0, Math.floor(tickOfX(p.x)));
  let end = start + state.lastLength;
  for (const n of state.notes) {
    if (n.key === key && n.start > start) end = Math.min(end, n.start);
  }
  const note = { key, start, end: Math.max(end, start + 1) };
  pushUndo(snapshot());
  state.notes.push(note);
  selectOnly(note);
  tone(key);
  commitRoll();
}

function deleteSelection() {
  if (!state.selected.size) return;
  pushUndo(snapshot());
  state.notes = state.notes.filter((n) => !state.selected.has(n));
  state.selected.clear();
  commitRoll();
}

function selectAll() {
  state.selected = new Set(state.notes);
  updateRollInfo();
  redraw();
}

// Sort, and merge runs of one key that overlap or touch: the text cannot tell them apart.
function normalizeNotes(notes, selected) {
  const byKey = new Map();
  for (const n of notes) {
    if (!byKey.has(n.key)) byKey.set(n.key, []);
    byKey.get(n.key).push(n);
  }
  const out = [];
  for (const runs of byKey.values()) {
    runs.sort((a, b) => a.start - b.start);
    let cur = null;
    for (const n of runs) {
      if (cur && n.start <= cur.end) {
        cur.end = Math.max(cur.end, n.end);
        if (selected.has(n)) { selected.delete(n); selected.add(cur); }
      } else {
        cur = n;
        out.push(n);
      }
    }
  }
  out.sort((a, b) => a.start - b.start || a.key - b.key);
  return out;
}

// ---------------------------------------------------------------------------------------------
// 6. the roll and the text in step

// After a roll edit: normalise, redraw, and have the server write the text. The sketch never
// shrinks by an edit (deleting the last note keeps its rests); n_ticks = max(n_ticks, last end).
function commitRoll() {
  state.notes = normalizeNotes(state.notes, state.selected);
  state.nTicks = Math.max(state.nTicks, lastEnd(state.notes));
  updateScrollExtent();
  updateRollInfo();
  redraw();
  syncTextFromRoll();
}

function sketchRequest(notes = state.notes, nTicks = state.nTicks) {
  return {
    tick_ms: state.tickMs, n_ticks: nTicks, meta: state.meta,
    notes: notes.map(({ key, start, end }) => ({ key, start, end })),
  };
}

// The roll's notes are already what the server makes of them (normalizeNotes merges runs as the text
// does), so only the text and its length come back: the note objects a drag holds stay the same.
async function syncTextFromRoll() {
  const seq = ++state.syncSeq;
  clearTimeout(state.textTimer);
  try {
    const res = await api("/api/text", { json: sketchRequest() });
    if (seq !== state.syncSeq) return;
    $("text").value = res.text;
    state.nTicks = res.n_ticks;
    updateRollInfo();
    showTextError(null);
  } catch (err) {
    if (seq === state.syncSeq) setStatus(`could not write the text: ${err.message}`, true);
  }
}

// Take the server's sketch (parsed text, opened file) as the roll's content.
function adoptSketch(sk) {
  state.notes = sk.notes.map(({ key, start, end }) => ({ key, start, end }));
  state.radioDropTicks = 0;
  state.selected.clear();
  state.nTicks = sk.n_ticks;
  state.tickMs = sk.tick_ms || state.tickMs;
  state.meta = sk.meta || {};
  if (state.meta.title) state.fileBase = String(state.meta.title);
  updateScrollExtent();
  updateRollInfo();
  redraw();
}

function onTextInput() {
  clearTimeout(state.textTimer);
  ++state.syncSeq;             // whatever the roll asked for before is now out of date
  clearErrorMark();
  state.textTimer = setTimeout(parseText, TEXT_DEBOUNCE_MS);
}

// The text into the roll. A text edit can be undone from the roll (Ctrl+Z) like a roll edit.
async function parseText({ undoable = true } = {}) {
  const seq = ++state.syncSeq;
  const text = $("text").value;
  try {
    const res = await api("/api/parse", { json: { text } });
    if (seq !== state.syncSeq) return;
    if (undoable) pushUndo(snapshot());
    adoptSketch(res);
    showTextError(null);
  } catch (err) {
    if (seq !== state.syncSeq) return;
    if (err instanceof ApiError && err.status === 400) showTextError(err.body);
    else setStatus(`could not read the text: ${err.message}`, true);
  }
}

// Load a whole new text (composed): into the textarea, then parse it for the roll. A new piece starts
// a new undo history, and is saved as "sketch" (or its title), not under the name of a file opened before.
async function loadText(text) {
  $("text").value = text;
  state.selected.clear();
  state.undo = [];
  state.fileBase = "sketch";
  await parseText({ undoable: false });
}

// Show (or clear, with null) the text's error line, and mark its character in the backdrop.
function showTextError(err) {
  const line = $("text-error");
  state.textError = err ? { line: err.line, column: err.column, message: err.error } : null;
  $("text").closest(".text-wrap").classList.toggle("invalid", Boolean(err));
  if (!err) {
    line.textContent = "";
    clearErrorMark();
    return;
  }
  const where = err.line ? `${err.line}:${err.column || 1}: ` : "";
  // the server's message may already name the source and position ("the sketch:1:10: ..."): once is enough
  const message = (err.error || "not valid 88-key text").replace(/^[^:\n]*:\d+:\d+: /, "");
  line.textContent = where + message;
  line.title = "Click to put the caret there";
  markErrorPosition();
}

// Character offset of a 1-based line and column in the text.
function offsetOf(text, lineNo, column) {
  let offset = 0;
  for (let i = 1; i < lineNo; i++) {
    const nl = text.indexOf("\n", offset);
    if (nl < 0) return text.length;
    offset = nl + 1;
  }
  return Math.min(text.length, offset + Math.max(0, (column || 1) - 1));
}

// The backdrop under the transparent textarea holds the same text with the bad character in <mark>.
function markErrorPosition() {
  const e = state.textError;
  const back = $("text-backdrop");
  back.replaceChildren();
  if (!e || !e.line) return;
  const text = $("text").value;
  const at = offsetOf(text, e.line, e.column);
  const onChar = at < text.length && text[at] !== "\n";
  const mark = document.createElement("mark");
  mark.textContent = onChar ? text[at] : " ";   // at the end of the text or of a line: mark a space there
  back.append(text.slice(0, at), mark, text.slice(onChar ? at + 1 : at));
  syncBackdropScroll();
}

function clearErrorMark() {
  $("text-backdrop").replaceChildren();
}

function syncBackdropScroll() {
  const t = $("text"), back = $("text-backdrop");
  back.scrollTop = t.scrollTop;
  back.scrollLeft = t.scrollLeft;
}

function selectErrorInText() {
  const e = state.textError;
  if (!e || !e.line) return;
  const t = $("text");
  const at = offsetOf(t.value, e.line, e.column);
  t.focus();
  t.setSelectionRange(at, Math.min(t.value.length, at + 1));
}

// ---------------------------------------------------------------------------------------------
// 7. files

async function openFile(file) {
  const limit = state.info && state.info.limits ? state.info.limits.max_upload_bytes : null;
  if (limit && file.size > limit) {
    setStatus(`${file.name}: ${file.size} bytes, more than the upload limit of ${limit}`, true);
    return;
  }
  setStatus(`opening ${file.name}…`);
  try {
    const res = await api(`/api/open?name=${encodeURIComponent(file.name)}`, {
      body: file, headers: { "Content-Type": "application/octet-stream" },
    });
    stopLive();
    $("text").value = res.text;
    state.selected.clear();
    state.undo = [];
    state.sections = [];
    adoptSketch(res);
    showTextError(null);
    forgetTakes();
    state.fileBase = (state.meta.title ? String(state.meta.title) : file.name.replace(/\.[^.]*$/, "")) || "sketch";
    setScroll(0);
    const warn = res.warnings && res.warnings.length ? ` (${res.warnings.join("; ")})` : "";
    setStatus(`opened ${file.name}: ${res.notes.length} notes, ${fmt(res.seconds, 1)} s${warn}`);
  } catch (err) {
    setStatus(err.message.startsWith(file.name) ? err.message : `${file.name}: ${err.message}`, true);
  }
}

function saveText() {
  download(new Blob([$("text").value], { type: "text/plain" }), `${state.fileBase}.txt`);
}

async function saveMidi() {
  try {
    const blob = await api("/api/export.mid", { json: { text: $("text").value }, as: "blob" });
    download(blob, `${state.fileBase}.mid`);
  } catch (err) {
    setStatus(`MIDI: ${err.message}`, true);
  }
}

function saveWav() {
  const take = state.takes.wavenet;
  if (take) download(take.blob, `${state.fileBase}-wavenet.wav`);
}

function setupDrop() {
  let depth = 0;
  const hint = $("drop-hint");
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  document.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    depth++;
    hint.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) hint.hidden = true;
  });
  document.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    hint.hidden = true;
    const file = e.dataTransfer.files[0];
    if (file) openFile(file);
  });
}

// ---------------------------------------------------------------------------------------------
// 8. audio: tones, WAV, takes, A/B

// One AudioContext for the page, at the model's sample rate where the browser allows it
// (AudioBuffers at another rate are resampled by the browser anyway).
function audioContext(sampleRate) {
  if (state.audioCtx && state.audioCtx.state !== "closed") return state.audioCtx;
  try {
    state.audioCtx = new AudioContext(sampleRate ? { sampleRate } : {});
  } catch (_) {
    state.audioCtx = new AudioContext();
  }
  return state.audioCtx;
}

// The keyboard's short tone: not the WaveNet, an oscillator with a quick decay.
function tone(key) {
  const ctx = wakeAudio();
  const osc = ctx.createOscillator(), gain = ctx.createGain();
  const t = ctx.currentTime;
  osc.type = "triangle";
  osc.frequency.value = keyFrequency(key);
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.3, t + 0.005);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.5);
  osc.connect(gain).connect(ctx.destination);
  osc.start(t);
  osc.stop(t + 0.55);
  state.keyDown = key;
  drawKeyboard();
  setTimeout(() => { if (state.keyDown === key) { state.keyDown = null; drawKeyboard(); } }, 200);
}

// A mono 16-bit PCM WAV from Int16Array samples.
function wavBlob(samples, sampleRate) {
  const header = new DataView(new ArrayBuffer(44));
  const str = (off, s) => { for (let i = 0; i < s.length; i++) header.setUint8(off + i, s.charCodeAt(i)); };
  const dataBytes = samples.length * 2;
  str(0, "RIFF");
  header.setUint32(4, 36 + dataBytes, true);
  str(8, "WAVE");
  str(12, "fmt ");
  header.setUint32(16, 16, true);          // fmt chunk size
  header.setUint16(20, 1, true);           // PCM
  header.setUint16(22, 1, true);           // mono
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true);
  header.setUint16(32, 2, true);           // block align
  header.setUint16(34, 16, true);          // bits per sample
  str(36, "data");
  header.setUint32(40, dataBytes, true);
  return new Blob([header.buffer, samples.buffer.slice(samples.byteOffset, samples.byteOffset + dataBytes)],
    { type: "audio/wav" });
}

function concatInt16(chunks) {
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const out = new Int16Array(total);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

// A take: a WAV blob playable in the <audio id="take"> element.
function setTake(source, blob, { durationS, text, timbre = null }) {
  const old = state.takes[source];
  if (old) URL.revokeObjectURL(old.url);
  state.takes[source] = { blob, url: URL.createObjectURL(blob), durationS, text, timbre };
  state.spectrograms[source] = null;
  if (source === "wavenet") $("save-wav").disabled = false;
  if (state.source === source) showTake(source);
  fetchSpectrogram(source);
}

function forgetTakes() {
  for (const source of ["wavenet", "soundfont"]) {
    if (state.takes[source]) URL.revokeObjectURL(state.takes[source].url);
    state.takes[source] = null;
    state.spectrograms[source] = null;
  }
  $("save-wav").disabled = true;
  const audio = $("take");
  audio.pause();
  audio.removeAttribute("src");
  audio.load();
  state.cursorS = null;
  redraw();
}

// Put a take into the audio element; when switching A/B it keeps the position and keeps playing.
function showTake(source) {
  const audio = $("take");
  const take = state.takes[source];
  const wasPlaying = !audio.paused;
  const at = audio.currentTime || 0;
  if (!take) {
    audio.pause();
    audio.removeAttribute("src");
    audio.load();
  } else if (audio.src !== take.url) {
    audio.src = take.url;
    audio.addEventListener("loadedmetadata", () => {
      audio.currentTime = Math.min(at, audio.duration || at);
      if (wasPlaying) audio.play();
    }, { once: true });
  }
  updateScrollExtent();
  redraw();
}

// The SoundFont rendering of the current text (fetched again only when the text changed).
async function ensureSoundFontTake() {
  const text = $("text").value;
  const timbre = $("timbre").value || null;
  const have = state.takes.soundfont;
  if (have && have.text === text && have.timbre === timbre) return have;
  setStatus("rendering with the SoundFont…");
  const blob = await api("/api/render", { json: { text, timbre }, as: "blob" });
  const durationS = await wavDuration(blob);
  setTake("soundfont", blob, { durationS, text, timbre });
  setStatus(`SoundFont rendering: ${fmt(durationS, 2)} s`);
  return state.takes.soundfont;
}

// Seconds of a PCM WAV blob, read from its header (fmt and data chunks).
async function wavDuration(blob) {
  const view = new DataView(await blob.arrayBuffer());
  let off = 12, byteRate = 0;
  while (off + 8 <= view.byteLength) {
    const id = String.fromCharCode(...[0, 1, 2, 3].map((i) => view.getUint8(off + i)));
    const size = view.getUint32(off + 4, true);
    if (id === "fmt ") byteRate = view.getUint32(off + 16, true);
    if (id === "data") return byteRate ? Math.min(size, view.byteLength - off - 8) / byteRate : 0;
    off += 8 + size + (size & 1);
  }
  return 0;
}

async function onAbChange() {
  state.source = $("ab").checked ? "soundfont" : "wavenet";
  try {
    if (state.source === "soundfont") await ensureSoundFontTake();
    showTake(state.source);
    if (!state.takes[state.source]) setStatus("no WaveNet take yet: press Play");
  } catch (err) {
    setStatus(`SoundFont: ${err.message}`, true);
  }
  redraw();
}

const somethingPlays = () => Boolean((state.live && state.live.playing) || !$("take").paused);

// The cursor: from the live session's audio clock, else from the <audio> element.
function updateCursor() {
  const live = state.live;
  const audio = $("take");
  if (live && live.playing) {
    state.cursorS = livePositionS(live);
  } else if (state.takes[state.source] && audio.src && (!audio.paused || audio.currentTime > 0)) {
    state.cursorS = audio.currentTime;
  }
  if (somethingPlays()) followCursor();
  redraw();
}

// One loop of animation frames while anything plays.
function cursorTick() {
  updateCursor();
  if (somethingPlays()) requestAnimationFrame(cursorTick);
  else state.cursorLoop = false;
}

function startCursorLoop() {
  if (state.cursorLoop) return;
  state.cursorLoop = true;
  requestAnimationFrame(cursorTick);
}

// ---------------------------------------------------------------------------------------------
// 9. live playback over the WebSocket
//
// The session object (state.live) holds the socket, the samples received (Int16Array chunks),
// what is buffered but not yet scheduled (`pending`), and a timeline of scheduled chunks
// {when, pos, len} on the AudioContext clock, which the cursor reads.

function playMessage(mode) {
  const common = {
    temperature: Number($("temperature").value),
    min_p: Number($("min-p").value),
    denoise: Number($("denoise").value),
    seed: seedOf($("seed")),
    style: $("style").value || null,
    timbre: $("timbre").value || null,
  };
  if (mode === "sketch") return { mode, text: $("text").value, ...common };
  return {
    mode, ...common,
    compose_temperature: Number($("compose-temperature").value),
    style: $("compose-style").value || null,   // the radio's style is the composer's
  };
}

// The AudioContext is made (or resumed) in the click itself, before any await: browsers let a page
// sound only from a user's gesture.
function wakeAudio() {
  const ctx = audioContext(state.info ? state.info.sample_rate_hz : undefined);
  if (ctx.state === "suspended") ctx.resume();
  return ctx;
}

async function onPlay() {
  wakeAudio();
  if (state.live) stopLive();
  $("take").pause();
  if (state.source === "soundfont") {
    try {
      await ensureSoundFontTake();
      showTake("soundfont");
      $("take").currentTime = 0;
      await $("take").play();
    } catch (err) {
      setStatus(`SoundFont: ${err.message}`, true);
    }
    return;
  }
  startLive(playMessage("sketch"));
}

async function onRadio() {
  if (state.live && state.live.mode === "radio") {
    stopLive();
    return;
  }
  wakeAudio();
  if (state.live) stopLive();
  $("take").pause();
  const message = playMessage("radio");
  // With notes selected the radio continues from them, else it starts from silence.
  const prime = state.selected.size ? await primeText() : null;
  message.prime = prime ? prime.text : null;
  state.notes = prime ? prime.notes : [];
  state.nTicks = prime ? prime.nTicks : 0;
  state.radioDropTicks = 0;
  state.selected.clear();
  state.sections = [];
  state.undo = [];
  state.fileBase = "radio";
  forgetTakes();
  commitRoll();
  setScroll(0);
  startLive(message);
}

function startLive(message) {
  const sr = state.info ? state.info.sample_rate_hz : 16000;
  const ctx = wakeAudio();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/play`);
  ws.binaryType = "arraybuffer";
  const live = {
    ws, mode: message.mode, text: message.text, pressedAt: performance.now(), sr, nSamples: null,
    received: 0, chunks: [], pending: [], pendingSamples: 0, scheduledSamples: 0, leftover: null,
    firstChunkAt: null, firstChunkSamples: 0, playing: false, started: false, done: false, stopped: false,
    nextTime: 0, timeline: [], sources: new Set(), stalls: 0, queued: null, arrivals: [], droppedSamples: 0,
    gain: ctx.createGain(),
  };
  live.gain.connect(ctx.destination);
  state.live = live;
  Object.assign(window.studio, {
    firstSoundMs: null, stalls: 0, samplesReceived: 0, playing: false, done: false, nSamples: null, sampleRate: null,
    firstChunkMs: null, doneMs: null,
  });
  ws.onopen = () => ws.send(JSON.stringify(message));
  ws.onmessage = (ev) => {
    if (state.live !== live) return;
    if (typeof ev.data === "string") onLiveMessage(live, JSON.parse(ev.data));
    else onLiveChunk(live, ev.data);
  };
  ws.onerror = () => { if (state.live === live && !live.done) setStatus("the connection to the server failed", true); };
  ws.onclose = () => {
    if (state.live === live && !live.done && !live.stopped) {
      setStatus("the server closed the connection before the end", true);
      endLive(live);
    }
  };
  updateButtons();
  setStatus(message.mode === "radio" ? "radio: starting…" : "starting…");
}

function onLiveMessage(live, msg) {
  switch (msg.type) {
    case "queued":
      live.queued = msg.position;
      setStatus(`waiting for a free core: ${msg.position} ahead in the queue`);
      break;
    case "start":
      live.queued = null;
      live.sr = msg.sample_rate_hz;
      live.nSamples = msg.n_samples;
      window.studio.nSamples = msg.n_samples;
      window.studio.sampleRate = msg.sample_rate_hz;
      updateLiveStatus(live);
      break;
    case "ticks":
      appendTicks(live, msg.start, msg.text);
      break;
    case "done":
      onLiveDone(live, msg);
      break;
    case "error":
      setStatus(`playing: ${msg.error}`, true);
      endLive(live);
      break;
    default:
      break;
  }
}

// int16 little-endian; a message may in principle split a sample, so an odd byte waits for the next.
function toInt16(live, data) {
  let bytes = new Uint8Array(data);
  if (live.leftover !== null) {
    const joined = new Uint8Array(bytes.length + 1);
    joined[0] = live.leftover;
    joined.set(bytes, 1);
    bytes = joined;
    live.leftover = null;
  }
  if (bytes.length % 2) {
    live.leftover = bytes[bytes.length - 1];
    bytes = bytes.subarray(0, bytes.length - 1);
  }
  const out = new Int16Array(bytes.length / 2);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true);
  return out;
}

function onLiveChunk(live, data) {
  const samples = toInt16(live, data);
  if (!samples.length) return;
  const now = performance.now();
  if (live.firstChunkAt === null) {
    live.firstChunkAt = now;
    live.firstChunkSamples = samples.length;
    window.studio.firstChunkMs = Math.round(now - live.pressedAt);
  }
  live.chunks.push(samples);
  live.received += samples.length;
  live.arrivals.push({ at: now, received: live.received });
  if (live.arrivals.length > 400) live.arrivals.splice(0, 200);
  window.studio.samplesReceived = live.received;
  if (live.playing) {
    schedule(live, samples);
  } else {
    live.pending.push(samples);
    live.pendingSamples += samples.length;
    maybeStart(live);
  }
  updateLiveStatus(live);
}

// Samples per second of wall time, measured from the first chunk on (null until measurable).
function generationRate(live) {
  if (live.firstChunkAt === null) return null;
  const elapsed = (performance.now() - live.firstChunkAt) / 1000;
  if (elapsed < 0.1) return null;
  return (live.received - live.firstChunkSamples) / elapsed;
}

// The rate to plan with: the slower of the whole take's and the last RECENT_S seconds' (a machine
// that gets busier slows the generation down after playback has started).
function planningRate(live) {
  const overall = generationRate(live);
  if (overall === null) return null;
  const now = performance.now();
  const since = live.arrivals.find((a) => a.at >= now - RECENT_S * 1000);
  if (!since || now - since.at < RECENT_S * 500) return overall;
  return Math.min(overall, (live.received - since.received) / ((now - since.at) / 1000));
}

// Start (or resume after a stall) only when playback will not have to wait again:
// with a known length, when the samples still to come arrive before they are needed,
//   (n_samples - received) / rate <= (n_samples - scheduled) / sr - margin;
// for the radio, once a buffer is held (1 s if generation keeps up with real time, else 3 s).
function shouldStart(live) {
  if (live.done) return live.pendingSamples > 0;
  const buffered = live.pendingSamples / live.sr;
  if (buffered < MIN_BUFFER_S) return false;
  const rate = planningRate(live);
  if (rate === null) return false;
  if (live.nSamples !== null && live.nSamples !== undefined) {
    const arrive = Math.max(0, live.nSamples - live.received) / Math.max(rate, 1);
    const needed = (live.nSamples - live.scheduledSamples) / live.sr;
    return arrive <= needed - START_MARGIN_S;
  }
  return buffered >= (rate >= live.sr ? RADIO_FAST_BUFFER_S : RADIO_SLOW_BUFFER_S);
}

function maybeStart(live) {
  if (live.playing || live.stopped || !shouldStart(live)) return;
  const ctx = state.audioCtx;
  if (ctx.state === "suspended") ctx.resume();
  live.playing = true;
  live.nextTime = ctx.currentTime + SCHEDULE_LEAD_S;
  if (!live.started) {
    live.started = true;
    window.studio.firstSoundMs = Math.round(performance.now() + SCHEDULE_LEAD_S * 1000 - live.pressedAt);
  }
  window.studio.playing = true;
  const pending = live.pending;
  live.pending = [];
  live.pendingSamples = 0;
  for (const samples of pending) schedule(live, samples);
  startCursorLoop();
  updateButtons();
}

// One chunk into the AudioContext, right after the previous one.
function schedule(live, samples) {
  const ctx = state.audioCtx;
  if (live.nextTime < ctx.currentTime) {
    // it came too late: count the stall and buffer again before going on
    live.stalls++;
    window.studio.stalls = live.stalls;
    live.playing = false;
    live.pending.push(samples);
    live.pendingSamples += samples.length;
    maybeStart(live);
    return;
  }
  const buffer = ctx.createBuffer(1, samples.length, live.sr);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = buffer;
  src.connect(live.gain);
  src.start(live.nextTime);
  live.timeline.push({ when: live.nextTime, pos: live.scheduledSamples, len: samples.length });
  live.sources.add(src);
  src.onended = () => {
    live.sources.delete(src);
    if (live.done && !live.sources.size && !live.pending.length) endLive(live);
  };
  live.nextTime += samples.length / live.sr;
  live.scheduledSamples += samples.length;
}

// Seconds of the roll that are sounding now.
function livePositionS(live) {
  const t = state.audioCtx.currentTime;
  let pos = 0;
  for (let i = live.timeline.length - 1; i >= 0; i--) {
    const seg = live.timeline[i];
    if (seg.when <= t) {
      pos = seg.pos + Math.min(seg.len, (t - seg.when) * live.sr);
      break;
    }
  }
  // the audio starts at tick 0 (the radio plays its prime first), less what the radio dropped
  return (pos - live.droppedSamples) / live.sr;
}

function onLiveDone(live, msg) {
  live.done = true;
  live.wallS = msg.wall_s;
  window.studio.doneMs = Math.round(performance.now() - live.pressedAt);
  if (!live.playing) maybeStart(live);
  saveLiveTake(live);
  window.studio.done = true;
  updateLiveStatus(live);
  if (!live.sources.size && !live.pending.length) endLive(live);
  try { live.ws.close(); } catch (_) { /* already closed */ }
}

function saveLiveTake(live) {
  if (!live.received) return;
  const pcm = concatInt16(live.chunks);
  setTake("wavenet", wavBlob(pcm, live.sr), { durationS: pcm.length / live.sr, text: live.text });
}

// Stop button: tell the server, close the socket, silence what is scheduled; keep what came as the take.
function stopLive() {
  const live = state.live;
  if (!live) return;
  live.stopped = true;
  try {
    if (live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({ type: "stop" }));
    live.ws.close();
  } catch (_) { /* closing anyway */ }
  for (const src of live.sources) {
    try { src.stop(); } catch (_) { /* not started */ }
  }
  live.sources.clear();
  if (!live.done) saveLiveTake(live);
  endLive(live);
  setStatus(`stopped after ${fmt(live.received / live.sr, 1)} s · stalls: ${live.stalls}`);
}

function endLive(live) {
  if (state.live !== live) return;
  live.playing = false;
  state.live = null;
  window.studio.playing = false;
  if (live.done && !live.stopped) {
    const speed = live.wallS ? ` in ${fmt(live.wallS, 1)} s (${fmt(live.received / live.sr / live.wallS, 2)}x real time)` : "";
    setStatus(`played ${fmt(live.received / live.sr, 2)} s${speed} · first sound after ` +
      `${window.studio.firstSoundMs} ms · stalls: ${live.stalls}`);
  }
  try { live.ws.close(); } catch (_) { /* already closed */ }
  updateButtons();
  redraw();
}

function updateLiveStatus(live) {
  if (live.queued !== null) return;
  const sr = live.sr;
  const got = live.received / sr;
  const rate = generationRate(live);
  const speed = rate ? `, ${fmt(rate / sr, 2)}x real time` : "";
  const of = live.nSamples ? ` of ${fmt(live.nSamples / sr, 1)} s` : "";
  const what = live.done ? "generated" : "generating";
  const playing = live.playing ? "playing" : live.done ? "finishing" : "buffering";
  const radio = live.mode === "radio" ? "radio: " : "";
  setStatus(`${radio}${what} ${fmt(got, 1)} s${of}${speed} · ${playing} · stalls: ${live.stalls}`);
}

// Radio: the new ticks, as 88-key text without header, go into the roll. Each tick is the keys up to
// a space (key = character code - 33); newlines are layout. A key sounding in consecutive ticks
// continues its run, also a run that ends where these ticks begin (the previous message, the prime).
function appendTicks(live, absStart, text) {
  const start = absStart - state.radioDropTicks;   // the server counts ticks from the radio's start
  const ticks = text.replace(/\r?\n/g, "").split(" ");
  ticks.pop();                      // the text ends with a tick's space: nothing after it
  const open = new Map(state.notes.filter((n) => n.end === start).map((n) => [n.key, n]));
  ticks.forEach((chars, i) => {
    const t = start + i;
    for (const ch of chars) {
      const key = ch.charCodeAt(0) - 33;
      if (key < 0 || key >= N_KEYS) continue;
      const run = open.get(key);
      if (run && run.end === t) {
        run.end = t + 1;
      } else {
        const note = { key, start: t, end: t + 1 };
        state.notes.push(note);
        open.set(key, note);
      }
    }
  });
  state.nTicks = Math.max(state.nTicks, start + ticks.length);
  state.notes.sort((a, b) => a.start - b.start || a.key - b.key);
  trimRadio(live);
  updateScrollExtent();
  updateRollInfo();
  redraw();
  radioText();
}

// Past the radio's window (limits.max_seconds), drop its oldest ticks from the roll, their audio from
// the take and the cursor's clock, and scroll with them; never a tick that has not been heard yet.
function trimRadio(live) {
  const max = radioWindowS();
  const tickS = state.tickMs / 1000;
  if (!Number.isFinite(max) || state.nTicks * tickS <= max) return;
  const keep = Math.floor(max * (1 - RADIO_TRIM_FRACTION) / tickS);
  const heard = live.playing ? Math.floor(livePositionS(live) / tickS) : 0;
  const drop = Math.min(state.nTicks - keep, heard);
  if (drop <= 0) return;
  for (const n of state.selected) if (n.end <= drop) state.selected.delete(n);
  state.notes = state.notes.filter((n) => n.end > drop);
  for (const n of state.notes) {
    n.start = Math.max(0, n.start - drop);
    n.end -= drop;
  }
  state.nTicks -= drop;
  state.radioDropTicks += drop;
  state.undo = [];   // its snapshots are in the ticks before the drop
  const samples = Math.round(drop * tickS * live.sr);
  dropFrontSamples(live.chunks, samples);
  live.droppedSamples += samples;
  const now = state.audioCtx ? state.audioCtx.currentTime : 0;
  const done = live.timeline.findIndex((seg) => seg.when + seg.len / live.sr > now);
  if (done > 1) live.timeline.splice(0, done - 1);   // keep the segment before the one sounding
  setScroll(state.view.scrollPx - drop * state.view.pxPerTick);
}

// The seconds of music the radio keeps: the server's length limit (limits.max_seconds).
function radioWindowS() {
  return state.info && state.info.limits ? state.info.limits.max_seconds : Infinity;
}

// Remove the first n samples of a list of Int16Array chunks, in place.
function dropFrontSamples(chunks, n) {
  while (n > 0 && chunks.length) {
    if (chunks[0].length <= n) {
      n -= chunks[0].length;
      chunks.shift();
    } else {
      chunks[0] = chunks[0].subarray(n);
      n = 0;
    }
  }
}

// The text follows the radio while it is within what the server writes (limits.max_seconds): always,
// once trimRadio keeps the window, except while playback lags more than the window behind.
function radioText() {
  const max = radioWindowS();
  if (secondsOfTicks(state.nTicks) <= max) {
    syncTextFromRoll();
  } else if (!$("text-error").textContent) {
    $("text-error").textContent = `the text waits: the radio is more than ${max} s ahead of what has been heard`;
  }
}

// ---------------------------------------------------------------------------------------------
// 10. the spectrogram

// A colour ramp from near black through purple and orange to pale yellow.
const COLORMAP = (() => {
  const stops = [[0, 14, 10, 28], [0.35, 92, 30, 112], [0.65, 222, 82, 58], [0.85, 250, 172, 52], [1, 252, 250, 196]];
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    let j = 0;
    while (j < stops.length - 2 && v > stops[j + 1][0]) j++;
    const [a, b] = [stops[j], stops[j + 1]];
    const f = (v - a[0]) / (b[0] - a[0]);
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(a[c + 1] + f * (b[c + 1] - a[c + 1]));
  }
  return lut;
})();

async function fetchSpectrogram(source) {
  const take = state.takes[source];
  if (!take) return;
  try {
    const res = await api("/api/spectrogram", { body: take.blob, headers: { "Content-Type": "audio/wav" } });
    if (state.takes[source] !== take) return;      // a newer take replaced it meanwhile
    state.spectrograms[source] = spectrogramImage(res);
    redraw();
  } catch (err) {
    setStatus(`spectrogram: ${err.message}`, true);
  }
}

// 88 x n_frames bytes, key-major (key 0 first), into an n_frames x 88 canvas with C8 at the top.
function spectrogramImage({ hop_s: hopS, n_frames: nFrames, data }) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, nFrames);
  canvas.height = N_KEYS;
  const g = canvas.getContext("2d");
  const img = g.createImageData(canvas.width, N_KEYS);
  for (let key = 0; key < N_KEYS; key++) {
    const row = N_KEYS - 1 - key;
    for (let f = 0; f < nFrames; f++) {
      const v = bytes[key * nFrames + f];
      const o = (row * canvas.width + f) * 4;
      img.data[o] = COLORMAP[v * 3];
      img.data[o + 1] = COLORMAP[v * 3 + 1];
      img.data[o + 2] = COLORMAP[v * 3 + 2];
      img.data[o + 3] = 255;
    }
  }
  g.putImageData(img, 0, 0);
  return { hopS, nFrames, image: canvas };
}

// ---------------------------------------------------------------------------------------------
// 11. compose

// The 88-key text of ticks 0 .. the end of the selected notes (the whole sketch when none is selected).
async function primeText() {
  const chosen = state.selected.size ? [...state.selected] : state.notes;
  const end = state.selected.size ? lastEnd(chosen) : Math.max(state.nTicks, lastEnd(chosen));
  if (end <= 0) return null;
  const notes = state.notes
    .filter((n) => n.start < end)
    .map((n) => ({ key: n.key, start: n.start, end: Math.min(n.end, end) }));
  const res = await api("/api/text", { json: sketchRequest(notes, end) });
  return { text: res.text, notes, nTicks: end };
}

function composeRequest(prime) {
  const req = {
    seconds: Number($("compose-seconds").value) || 10,
    temperature: Number($("compose-temperature").value),
    seed: seedOf($("compose-seed")),
    form: $("compose-form").value.trim() || null,
    style: $("compose-style").value || null,
    prime,
  };
  if (!$("blend-row").hidden) {
    req.style_b = $("compose-style-b").value || null;
    req.blend = Number($("compose-blend").value);
  }
  return req;
}

async function compose(continueSelection) {
  if (state.busy) return;
  state.busy = true;
  updateButtons();
  try {
    const prime = continueSelection ? await primeText() : null;
    setStatus(continueSelection ? "composing a continuation…" : "composing…");
    const started = performance.now();
    const res = await api("/api/compose", { json: composeRequest(prime ? prime.text : null) });
    stopLive();
    forgetTakes();
    await loadText(res.text);
    state.sections = res.sections || [];  // in ticks of the whole text, the prime's included
    if (!continueSelection) setScroll(0);
    const secs = fmt((performance.now() - started) / 1000, 1);
    setStatus(`composed ${fmt(secondsOfTicks(state.nTicks), 1)} s in ${secs} s` +
      (state.sections.length ? ` · form ${state.sections.map((s) => s[0]).join("")}` : ""));
    redraw();
  } catch (err) {
    setStatus(`compose: ${err.message}`, true);
  } finally {
    state.busy = false;
    updateButtons();
  }
}

// ---------------------------------------------------------------------------------------------
// 12. shortcuts, controls, start-up

function inTextField(el) {
  return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
    (el.tagName === "INPUT" && !["checkbox", "range", "button", "file"].includes(el.type)));
}

function onKeyDown(e) {
  if (inTextField(e.target)) return;
  const mod = e.ctrlKey || e.metaKey;
  if (e.key === "Delete" || e.key === "Backspace") {
    deleteSelection();
  } else if (mod && e.key.toLowerCase() === "a") {
    selectAll();
  } else if (mod && e.key.toLowerCase() === "z") {
    undo();
  } else if (e.key === "Escape") {
    state.selected.clear();
    if (state.live) stopLive();
    updateRollInfo();
    redraw();
  } else if (e.key === " " && e.target.tagName !== "BUTTON") {
    if (state.live) stopLive(); else onPlay();
  } else if (e.key === "+" || e.key === "=") {
    zoom(ZOOM_STEP);
  } else if (e.key === "-") {
    zoom(1 / ZOOM_STEP);
  } else {
    return;
  }
  e.preventDefault();
}

function onWheel(e) {
  e.preventDefault();
  if (e.ctrlKey || e.metaKey) {
    zoom(e.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, pointerPos(e).x);
  } else {
    setScroll(state.view.scrollPx + (Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.deltaY));
  }
}

function onKeyboardClick(e) {
  const r = $("keyboard").getBoundingClientRect();
  tone(keyOfY(e.clientY - r.top));
}

function onRulerClick(e) {
  const r = $("ruler").getBoundingClientRect();
  const s = secondsOfTicks(tickOfX(e.clientX - r.left));
  const take = state.takes[state.source];
  const audio = $("take");
  if (take && audio.src) {
    audio.currentTime = clamp(s, 0, audio.duration || take.durationS);
    state.cursorS = s;
    redraw();
  }
}

function updateButtons() {
  const live = state.live;
  $("stop").disabled = !live && $("take").paused;
  $("play").disabled = state.busy;
  $("radio").textContent = live && live.mode === "radio" ? "■ Radio" : "Radio";
  $("radio").classList.toggle("active", Boolean(live && live.mode === "radio"));
  $("compose-new").disabled = state.busy;
  $("compose-continue").disabled = state.busy;
}

function bindOutput(inputId, digits = 2) {
  const input = $(inputId), out = $(`${inputId}-out`);
  const show = () => { out.textContent = fmt(input.value, digits); };
  input.addEventListener("input", show);
  show();
}

function fillSelect(select, values, keepFirst = true) {
  const first = keepFirst ? select.options[0] : null;
  select.replaceChildren(...(first ? [first] : []));
  for (const v of values) select.append(new Option(v, v));
}

// Controls from GET /api/info: defaults, styles, and the blend row when the composer has two styles.
function applyInfo(info) {
  state.info = info;
  state.tickMs = info.tick_ms || state.tickMs;
  const s = info.sampling || {};
  if (s.temperature !== undefined) $("temperature").value = s.temperature;
  if (s.min_p !== undefined) $("min-p").value = s.min_p;
  if (info.denoise_db !== undefined) $("denoise").value = info.denoise_db;
  fillSelect($("style"), info.styles || []);
  fillSelect($("timbre"), info.timbres || [], false);
  $("timbre-row").hidden = !(info.timbres && info.timbres.length);
  const cstyles = (info.composer && info.composer.styles) || [];
  fillSelect($("compose-style"), cstyles);
  if (cstyles.length >= 2) {
    fillSelect($("compose-style-b"), cstyles, false);
    $("compose-style-b").selectedIndex = 1;
    $("blend-row").hidden = false;
  }
  bindOutput("temperature");
  bindOutput("min-p");
  bindOutput("denoise", 0);
  bindOutput("compose-temperature");
  bindOutput("compose-blend");
  const jobs = info.jobs ? ` · ${info.jobs} job${info.jobs > 1 ? "s" : ""} at once` : "";
  setStatus(`ready: ${info.model} at ${info.sample_rate_hz} Hz${jobs}` +
    (info.composer ? ` · composer ${info.composer.name}` : ""));
}

function bindControls() {
  const roll = $("roll");
  roll.addEventListener("pointerdown", onRollPointerDown);
  roll.addEventListener("pointermove", onRollPointerMove);
  roll.addEventListener("pointerup", onRollPointerUp);
  roll.addEventListener("pointercancel", () => { state.drag = null; redraw(); });
  $("layers").addEventListener("wheel", onWheel, { passive: false });
  $("keyboard").addEventListener("pointerdown", onKeyboardClick);
  $("ruler").addEventListener("click", onRulerClick);
  $("roll-scroll").addEventListener("scroll", () => {
    state.view.scrollPx = $("roll-scroll").scrollLeft;
    redraw();
  });
  $("zoom-in").addEventListener("click", () => zoom(ZOOM_STEP));
  $("zoom-out").addEventListener("click", () => zoom(1 / ZOOM_STEP));
  $("show-spectrogram").addEventListener("change", (e) => {
    state.view.showSpectrogram = e.target.checked;
    redraw();
  });

  const text = $("text");
  text.addEventListener("input", onTextInput);
  text.addEventListener("scroll", syncBackdropScroll);
  $("text-error").addEventListener("click", selectErrorInText);

  $("open-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) openFile(file);
    e.target.value = "";
  });
  $("save-txt").addEventListener("click", saveText);
  $("save-mid").addEventListener("click", saveMidi);
  $("save-wav").addEventListener("click", saveWav);

  $("play").addEventListener("click", onPlay);
  $("stop").addEventListener("click", () => { stopLive(); $("take").pause(); updateButtons(); });
  $("radio").addEventListener("click", onRadio);
  $("ab").addEventListener("change", onAbChange);
  $("compose-new").addEventListener("click", () => compose(false));
  $("compose-continue").addEventListener("click", () => compose(true));

  const audio = $("take");
  audio.addEventListener("play", () => {
    // listening to the take ends a live session whose generation has finished
    if (state.live && state.live.done) stopLive();
    startCursorLoop();
    updateButtons();
  });
  audio.addEventListener("pause", updateButtons);
  audio.addEventListener("seeked", updateCursor);

  document.addEventListener("keydown", onKeyDown);
  setupDrop();
  new ResizeObserver(onResize).observe($("layers"));
}

function onResize() {
  state.view.width = $("layers").clientWidth || 800;
  drawKeyboard();
  updateScrollExtent();
  redraw();
}

async function init() {
  bindControls();
  onResize();
  updateButtons();
  try {
    applyInfo(await getInfo());
  } catch (err) {
    setStatus(`cannot reach the server: ${err.message}`, true);
    return;
  }
  // start with an empty sketch, written by the server so the header is right
  syncTextFromRoll();
}

document.addEventListener("DOMContentLoaded", init);
