// duplex voice lab: speak one text with several voices over /ws and compare them.
// Figures: first audio (the server's reply start → first frame), real-time factor
// (the worker's compute time / audio length), loudness (LUFS, measured by the
// server with pyloudnorm), plus a waveform and a spectrogram of the frames received.
"use strict";

const $ = (id) => document.getElementById(id);
const RATE = 48000;
const LOAD_TIMEOUT_MS = 300000;
let models = [];
const results = []; // one entry per voice of the last comparison
window.labResults = results;

function headers() {
  const key = $("key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

async function fetchModels() {
  const r = await fetch("/api/models", { headers: headers() });
  if (!r.ok) throw new Error(`/api/models: HTTP ${r.status}`);
  return (await r.json()).models;
}

async function listVoices() {
  const box = $("voices");
  const checked = new Set([...box.querySelectorAll("input:checked")].map((b) => b.value));
  try {
    models = await fetchModels();
  } catch (err) {
    box.textContent = String(err.message || err);
    box.className = "error";
    return;
  }
  box.className = "";
  box.textContent = "";
  const families = new Map();
  for (const m of models) {
    const family = m.family || "other";
    if (!families.has(family)) families.set(family, []);
    families.get(family).push(m);
  }
  for (const [family, list] of [...families].sort()) {
    const row = document.createElement("div");
    row.className = "family";
    row.innerHTML = `<b></b>`;
    row.querySelector("b").textContent = family;
    for (const m of list) {
      const label = document.createElement("label");
      label.className = "voice";
      const tick = document.createElement("input");
      tick.type = "checkbox";
      tick.value = m.id;
      tick.checked = checked.has(m.id);
      tick.dataset.family = family;
      label.append(tick, ` ${m.id} `);
      const tag = document.createElement("span");
      tag.className = "meta";
      tag.textContent = m.resident ? "(loaded)" : "(not loaded)";
      label.append(tag);
      row.append(label);
    }
    box.append(row);
  }
}

function card(model, family) {
  const el = document.createElement("div");
  el.className = "card";
  el.dataset.model = model;
  el.innerHTML = `<h3></h3><div class="meta"><span class="state">waiting</span> <span class="worker"></span></div>
    <canvas class="wave" width="600" height="70"></canvas>
    <canvas class="spec" width="600" height="70"></canvas>
    <dl><dt>first audio</dt><dd class="first-audio">–</dd><dt>real-time factor</dt><dd class="rtf">–</dd>
    <dt>loudness</dt><dd class="lufs">–</dd><dt>length</dt><dd class="seconds">–</dd></dl>
    <audio controls preload="none"></audio> <a class="download-wav" hidden>WAV</a>`;
  el.querySelector("h3").textContent = `${model} (${family})`;
  $("results").append(el);
  return el;
}

function setState(el, state, detail) {
  el.className = `card state-${state}`;
  el.dataset.state = state;
  el.dataset.history = (el.dataset.history || "") + state + " ";
  el.querySelector(".state").textContent = detail ? `${state}: ${detail}` : state;
}

async function ensureLoaded(model, el) {
  if (models.find((m) => m.id === model)?.resident) return;
  setState(el, "loading");
  const r = await fetch(`/api/models/${encodeURIComponent(model)}/load`, { method: "POST", headers: headers() });
  const body = await r.json();
  if (!r.ok) throw new Error(`${body.error}: ${body.message}`);
  if (body.worker) el.querySelector(".worker").textContent = `on ${body.worker}`;
  if (body.state === "ready") return;
  const deadline = performance.now() + LOAD_TIMEOUT_MS;
  while (performance.now() < deadline) {
    await new Promise((done) => setTimeout(done, 500));
    models = await fetchModels();
    if (models.find((m) => m.id === model)?.resident) return;
  }
  throw new Error(`${model} did not load in ${LOAD_TIMEOUT_MS / 1000} s`);
}

function speak(model, text) {
  const key = $("key").value.trim();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${key ? "?key=" + encodeURIComponent(key) : ""}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const chunks = [];
    const got = { chunks, firstAudioMs: null, end: null, worker: "", spoke: "" };
    ws.onopen = () => ws.send(JSON.stringify({ type: "start", model, sample_rate: 16000 }));
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") { chunks.push(new Int16Array(ev.data)); return; }
      const m = JSON.parse(ev.data);
      if (m.type === "ready") ws.send(JSON.stringify({ type: "say", text }));
      else if (m.type === "tts_start") { got.worker = m.worker; got.spoke = m.model; }
      else if (m.type === "latency") got.firstAudioMs = m.first_audio_ms;
      else if (m.type === "tts_end") { got.end = m; ws.close(); resolve(got); }
      else if (m.type === "error" && !m.retrying) { ws.close(); reject(new Error(`${m.code}: ${m.message}`)); }
    };
    ws.onclose = (ev) => { if (!got.end) reject(new Error(`connection closed (${ev.code})`)); };
  });
}

function joined(chunks) {
  const pcm = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) { pcm.set(c, at); at += c.length; }
  return pcm;
}

function wav(pcm) {
  const view = new DataView(new ArrayBuffer(44));
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + pcm.byteLength, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, RATE, true); view.setUint32(28, RATE * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, pcm.byteLength, true);
  return new Blob([view, pcm], { type: "audio/wav" });
}

function drawWave(canvas, pcm) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  g.fillStyle = "#3d85c6";
  const per = Math.max(1, Math.floor(pcm.length / w));
  for (let x = 0; x < w; x++) {
    let lo = 0, hi = 0;
    for (let i = x * per; i < Math.min(pcm.length, (x + 1) * per); i++) {
      lo = Math.min(lo, pcm[i]); hi = Math.max(hi, pcm[i]);
    }
    const top = h / 2 - (hi / 32768) * (h / 2), bottom = h / 2 - (lo / 32768) * (h / 2);
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

// In-place radix-2 FFT (the browser has none outside Web Audio's real-time graph).
function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const wr = Math.cos(ang * k), wi = Math.sin(ang * k);
        const ar = re[i + k + len / 2], ai = im[i + k + len / 2];
        const xr = ar * wr - ai * wi, xi = ar * wi + ai * wr;
        re[i + k + len / 2] = re[i + k] - xr; im[i + k + len / 2] = im[i + k] - xi;
        re[i + k] += xr; im[i + k] += xi;
      }
    }
  }
}

function drawSpectrogram(canvas, pcm) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height, size = 1024;
  g.fillStyle = "#000"; g.fillRect(0, 0, w, h);
  if (pcm.length < size) return;
  const hop = Math.max(1, Math.floor((pcm.length - size) / w));
  const maxBin = Math.floor((8000 / RATE) * size); // 0–8 kHz: where speech is
  const img = g.createImageData(w, h);
  for (let x = 0; x < w; x++) {
    const re = new Float64Array(size), im = new Float64Array(size);
    for (let i = 0; i < size; i++) {
      const s = pcm[x * hop + i] || 0;
      re[i] = (s / 32768) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size)); // Hann
    }
    fft(re, im);
    for (let y = 0; y < h; y++) {
      const bin = Math.floor(((h - 1 - y) / h) * maxBin);
      const db = 10 * Math.log10(re[bin] ** 2 + im[bin] ** 2 + 1e-12);
      const v = Math.max(0, Math.min(255, ((db + 80) / 80) * 255)); // −80…0 dB
      const at = (y * w + x) * 4;
      img.data[at] = v; img.data[at + 1] = v * 0.6; img.data[at + 2] = 255 - v; img.data[at + 3] = 255;
    }
  }
  g.putImageData(img, 0, 0);
}

async function measureVoice(model, family, text) {
  const el = card(model, family);
  const entry = { model, family, state: "waiting" };
  results.push(entry);
  try {
    await ensureLoaded(model, el);
    setState(el, "synthesizing");
    const got = await speak(model, text);
    const pcm = joined(got.chunks);
    const r = await fetch("/api/lab/loudness", { method: "POST", headers: headers(), body: pcm.buffer });
    const loud = await r.json();
    const audioMs = got.end.frames * 20;
    Object.assign(entry, {
      state: "done", worker: got.worker, spoken_by: got.spoke, frames: got.end.frames,
      first_audio_ms: got.firstAudioMs, synthesis_ms: got.end.synthesis_ms ?? null,
      rtf: got.end.synthesis_ms ? got.end.synthesis_ms / audioMs : null,
      seconds: loud.seconds, lufs: loud.lufs, peak_dbfs: loud.peak_dbfs,
    });
    el.querySelector(".worker").textContent = `on ${got.worker}` + (got.spoke !== model ? ` (spoken by ${got.spoke})` : "");
    el.querySelector(".first-audio").textContent = entry.first_audio_ms == null ? "–" : `${Math.round(entry.first_audio_ms)} ms`;
    el.querySelector(".rtf").textContent = entry.rtf == null ? "–" : entry.rtf.toFixed(3);
    el.querySelector(".lufs").textContent = entry.lufs == null ? "–" : `${entry.lufs.toFixed(1)} LUFS (peak ${entry.peak_dbfs} dBFS)`;
    el.querySelector(".seconds").textContent = `${entry.seconds.toFixed(2)} s`;
    for (const [cls, key] of [["first-audio", "first_audio_ms"], ["rtf", "rtf"], ["lufs", "lufs"], ["seconds", "seconds"]]) {
      el.querySelector("." + cls).dataset.value = entry[key] ?? "";
    }
    drawWave(el.querySelector(".wave"), pcm);
    drawSpectrogram(el.querySelector(".spec"), pcm);
    const url = URL.createObjectURL(wav(pcm));
    el.querySelector("audio").src = url;
    const link = el.querySelector(".download-wav");
    Object.assign(link, { href: url, download: `${model}.wav`, hidden: false });
    setState(el, "done");
  } catch (err) {
    Object.assign(entry, { state: "error", error: String(err.message || err) });
    setState(el, "error", entry.error);
  }
}

async function compare() {
  const chosen = [...document.querySelectorAll("#voices input:checked")];
  const text = $("text").value.trim();
  if (!chosen.length || !text) { $("status").textContent = "pick at least one voice and type a text"; return; }
  $("compare").disabled = true;
  $("download-json").hidden = true;
  $("results").textContent = "";
  results.length = 0;
  $("status").textContent = `measuring ${chosen.length} voice(s)…`;
  for (const box of chosen) await measureVoice(box.value, box.dataset.family, text); // one at a time: fair figures
  const report = { text, measured_at: new Date().toISOString(), voices: results };
  const json = $("download-json");
  json.href = URL.createObjectURL(new Blob([JSON.stringify(report, null, 2)], { type: "application/json" }));
  json.hidden = false;
  $("status").textContent = "done";
  $("compare").disabled = false;
  await listVoices(); // the loaded state changed
}

$("prepared").onchange = () => { if ($("prepared").value) $("text").value = $("prepared").value; };
$("compare").onclick = compare;
$("refresh").onclick = listVoices;
listVoices();
