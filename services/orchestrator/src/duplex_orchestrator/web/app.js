// duplex browser client: microphone → WebSocket → agent speech, with barge-in.
"use strict";
const $ = (id) => document.getElementById(id);
const JITTER_S = 0.05; // playback cushion: 40-60 ms absorbs network jitter
const stats = (window.duplexStats = {
  framesReceived: 0, framesPlayed: 0, playedSeconds: 0, peakRms: 0,
  flushes: 0, transcripts: [], replies: [], latency: [], errors: [], events: [], state: "disconnected",
  voice: null,
});
let ws, audioCtx, micStream, capture, playhead = 0, sources = [], currentReply = null, liveYou = null;
let uploading = false; // an uploaded clip is being sent: the microphone's frames wait
const RECORD_S = 8;

function log(cls, text) {
  const p = document.createElement("p");
  p.className = cls;
  p.textContent = text;
  $("log").appendChild(p);
  return p;
}
function setState(s) { stats.state = s; $("state").textContent = s; }

async function connect() {
  $("connect").disabled = true;
  // The device's own rate: Firefox cannot connect a microphone to a context at another
  // rate. The server resamples whatever we declare; playback buffers are 48 kHz.
  audioCtx = new AudioContext({ latencyHint: "interactive" });
  micStream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  await audioCtx.audioWorklet.addModule("/capture-worklet.js");
  const source = audioCtx.createMediaStreamSource(micStream);
  capture = new AudioWorkletNode(audioCtx, "capture-processor");
  source.connect(capture);
  const analyser = audioCtx.createAnalyser();
  analyser.connect(audioCtx.destination);
  window.duplexOutput = analyser;
  measureOutput(analyser);

  const key = $("key").value.trim();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${key ? "?key=" + encodeURIComponent(key) : ""}`;
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send(JSON.stringify({ type: "start", model: $("model").value || "", sample_rate: audioCtx.sampleRate }));
  ws.onmessage = (m) => (typeof m.data === "string" ? onEvent(JSON.parse(m.data)) : play(m.data));
  ws.onclose = () => { setState("disconnected"); cleanup(); };
  capture.port.onmessage = (e) => {
    if (ws && ws.readyState === 1 && stats.state !== "connecting" && !uploading) ws.send(e.data);
  };
  setState("connecting");
  $("hangup").disabled = false;
}

function cleanup() {
  flush();
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  if (audioCtx) audioCtx.close();
  ws = audioCtx = micStream = capture = null;
  $("connect").disabled = false;
  $("hangup").disabled = true;
  setCloning(false);
}

function setCloning(enabled) {
  for (const id of ["clip-record", "clip-file", "clip-clear"]) $(id).disabled = !enabled;
}

function onEvent(e) {
  stats.events.push(e.action ? `${e.type}:${e.action}` : e.type);
  switch (e.type) {
    case "ready":
      setState("listening");
      fillModels(e.models, e.model);
      setCloning(true);
      break;
    case "clone":
      $("voice").textContent = "recording the voice clip…";
      break;
    case "voice":
      stats.voice = e;
      $("voice").textContent = e.cloned
        ? `cloned voice (${e.seconds.toFixed(1)} s: “${e.transcript}”)`
        : "model's own voice";
      break;
    case "vad":
      if (e.state === "speech_start") setState("you are speaking");
      break;
    case "asr":
      if (!e.final) { // a live partial, replaced by the final text
        liveYou = liveYou || log("you", "");
        liveYou.textContent = "You: " + e.text + " …";
        break;
      }
      stats.transcripts.push(e.text);
      if (liveYou && !e.text) liveYou.remove();
      else if (e.text) (liveYou || log("you", "")).textContent = "You: " + e.text;
      liveYou = null;
      break;
    case "tts_start":
      currentReply = log("agent", "Agent: ");
      setState("agent speaking");
      break;
    case "reply":
      stats.replies.push(e.text);
      if (!currentReply) currentReply = log("agent", "Agent: ");
      currentReply.textContent += e.text;
      break;
    case "tts_end":
      if (e.interrupted && currentReply) currentReply.textContent += " [interrupted]";
      currentReply = null;
      setState("listening");
      break;
    case "barge_in":
      if (e.flush) flush(); // drop what is buffered, at once
      log("meta", "barge-in: " + e.action);
      break;
    case "latency":
      stats.latency.push(e);
      if (e.first_audio_ms !== undefined) $("first-audio").textContent = Math.round(e.first_audio_ms);
      if (e.voice_to_voice_ms !== undefined) $("v2v").textContent = Math.round(e.voice_to_voice_ms);
      break;
    case "model":
      log("meta", e.loading ? `loading ${e.requested}; speaking with ${e.active} meanwhile` : `voice: ${e.requested}`);
      break;
    case "error":
      stats.errors.push(e);
      log("error", `error (${e.code}): ${e.message}`);
      break;
  }
}

function play(buffer) {
  stats.framesReceived++;
  const pcm = new Int16Array(buffer);
  const frame = audioCtx.createBuffer(1, pcm.length, 48000);
  const data = frame.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
  const node = audioCtx.createBufferSource();
  node.buffer = frame;
  node.connect(window.duplexOutput);
  const now = audioCtx.currentTime;
  if (playhead < now) playhead = now + JITTER_S; // (re)start with a small cushion
  node.start(playhead);
  playhead += frame.duration;
  node.onended = () => {
    sources = sources.filter((s) => s !== node);
    if (!node.flushed) { stats.framesPlayed++; stats.playedSeconds += frame.duration; }
  };
  sources.push(node);
}

function flush() {
  stats.flushes++;
  for (const node of sources) { node.flushed = true; try { node.stop(); } catch (_) {} }
  sources = [];
  playhead = 0;
}

function measureOutput(analyser) {
  const buf = new Float32Array(analyser.fftSize);
  const tick = () => {
    if (!audioCtx) return;
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    stats.peakRms = Math.max(stats.peakRms, Math.sqrt(sum / buf.length));
    requestAnimationFrame(tick);
  };
  tick();
}

async function loadModels() {
  const key = $("key").value.trim();
  const r = await fetch("/api/models", { headers: key ? { Authorization: "Bearer " + key } : {} });
  if (r.ok) { const body = await r.json(); fillModels(body.models, body.default); }
}

function fillModels(models, selected) {
  const select = $("model");
  const current = select.value || selected;
  select.innerHTML = "";
  for (const m of models || []) {
    const o = document.createElement("option");
    o.value = m.id;
    o.textContent = m.id + (m.resident ? "" : " (not loaded)");
    select.appendChild(o);
  }
  if (current) select.value = current;
}

// A voice clip: the microphone for RECORD_S seconds, or a file decoded by the browser and
// sent as the same 20 ms frames at the session's rate. The server keeps it in memory only.
function recordClip() {
  ws.send(JSON.stringify({ type: "clone_start" }));
  setTimeout(() => ws && ws.readyState === 1 && ws.send(JSON.stringify({ type: "clone_end" })), RECORD_S * 1000);
}

async function uploadClip(file) {
  const rate = audioCtx.sampleRate;
  const decoded = await audioCtx.decodeAudioData(await file.arrayBuffer());
  const offline = new OfflineAudioContext(1, Math.ceil(decoded.duration * rate), rate);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const mono = (await offline.startRendering()).getChannelData(0);
  const step = Math.floor(rate / 50);
  uploading = true;
  try {
    ws.send(JSON.stringify({ type: "clone_start" }));
    for (let i = 0; i + step <= mono.length; i += step) {
      const pcm = new Int16Array(step);
      for (let j = 0; j < step; j++) {
        const v = Math.max(-1, Math.min(1, mono[i + j]));
        pcm[j] = v < 0 ? v * 32768 : v * 32767;
      }
      ws.send(pcm.buffer);
    }
    ws.send(JSON.stringify({ type: "clone_end" }));
  } finally {
    uploading = false;
  }
}

$("clip-record").onclick = () => ws && ws.readyState === 1 && recordClip();
$("clip-file").onchange = (e) => {
  const file = e.target.files[0];
  if (file && ws && ws.readyState === 1) uploadClip(file).catch((err) => log("error", "voice clip: " + err));
  e.target.value = "";
};
$("clip-clear").onclick = () => ws && ws.readyState === 1 && ws.send(JSON.stringify({ type: "clone_clear" }));
$("connect").onclick = () => connect().catch((err) => { log("error", String(err)); cleanup(); });
$("hangup").onclick = () => ws && ws.close();
$("model").onchange = () => ws && ws.readyState === 1 && ws.send(JSON.stringify({ type: "model", model: $("model").value }));
$("type-form").onsubmit = (e) => {
  e.preventDefault();
  const text = $("type-text").value.trim();
  if (text && ws && ws.readyState === 1) { ws.send(JSON.stringify({ type: "say", text })); $("type-text").value = ""; }
};
loadModels().catch(() => {});
