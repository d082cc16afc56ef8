// duplex browser client: microphone → WebRTC (or the WebSocket) → agent speech, with barge-in.
"use strict";
const $ = (id) => document.getElementById(id);
const JITTER_S = 0.05; // WebSocket playback cushion: 40-60 ms absorbs network jitter
const RTC_TIMEOUT_MS = 8000; // no open data channel by then: fall back to the WebSocket
const stats = (window.duplexStats = {
  framesReceived: 0, framesPlayed: 0, playedSeconds: 0, peakRms: 0, levels: [], timeline: [],
  flushes: 0, transcripts: [], replies: [], latency: [], errors: [], events: [], state: "disconnected",
  voice: null, transport: null, fallback: null, turns: [], micPeak: 0, micLoudAt: 0,
  pushToTalk: false, held: [],
});
// The per-turn latency chart: the last TURNS_SHOWN replies, one bar per figure.
const TURNS_SHOWN = 12;
const SERIES = [
  ["asr_ms", "ASR", "#6fa8dc"],
  ["end_of_turn_ms", "end-of-turn wait", "#f6b26b"],
  ["first_audio_ms", "first audio", "#93c47d"],
  ["voice_to_voice_ms", "voice-to-voice", "#8e7cc3"],
];
let heard = null; // the last final transcript's figures, until its reply's latency arrives
let link, audioCtx, micStream, capture, playhead = 0, sources = [], currentReply = null, liveYou = null;
let uploading = false; // an uploaded clip is being sent: the microphone's frames wait
let levelTimer = null;
const RECORD_S = 8;
// Push to talk: the microphone goes out only while the button (or Space) is held; the
// turn ends at its release, a beat later (the track's jitter buffer holds the last audio).
const END_TURN_DELAY_MS = 100;
let talking = false, sendTrack = null;
const micOpen = () => !stats.pushToTalk || talking;

function log(cls, text) {
  const p = document.createElement("p");
  p.className = cls;
  p.textContent = text;
  $("log").appendChild(p);
  return p;
}
function setState(s) { stats.state = s; $("state").textContent = s; }
function authHeaders() {
  const key = $("key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}
function startMessage(rate) {
  // Push to talk: only the release ends a turn, so a pause while holding never does.
  const turns = stats.pushToTalk ? "manual" : "auto";
  return JSON.stringify({ type: "start", model: $("model").value || "", sample_rate: rate, turn_detection: turns });
}

async function connect() {
  $("connect").disabled = $("ptt").disabled = true; // turn detection is the session's
  setState("connecting");
  // The device's own rate: Firefox cannot connect a microphone to a context at another
  // rate. The WebSocket path declares it (the server resamples); WebRTC is Opus at 48 kHz.
  audioCtx = new AudioContext({ latencyHint: "interactive" });
  micStream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  const output = audioCtx.createAnalyser();
  window.duplexOutput = output;
  const mic = audioCtx.createAnalyser();
  audioCtx.createMediaStreamSource(micStream).connect(mic); // measured only
  measureLevels(output, mic);
  const wanted = new URLSearchParams(location.search).get("transport") || "webrtc";
  if (wanted === "webrtc") {
    try {
      link = await connectRtc(output);
    } catch (err) {
      stats.fallback = String(err.message || err);
      log("meta", `WebRTC failed (${stats.fallback}); using the WebSocket`);
    }
  }
  if (!link) link = await connectWs(output);
  stats.transport = link.name;
  $("transport").textContent = link.name;
  link.send(startMessage(link.rate));
  $("hangup").disabled = false;
}

// WebRTC: the microphone track goes out as Opus, the agent's voice comes back on a track,
// events and messages on the "duplex" data channel; pings tell the server we are alive.
async function connectRtc(output) {
  const config = await (await fetch("/rtc/config", { headers: authHeaders() })).json();
  const pc = new RTCPeerConnection({ iceServers: config.iceServers || [] });
  // A copy of the microphone is sent, so push to talk can mute it while the meter listens.
  sendTrack = micStream.getAudioTracks()[0].clone();
  sendTrack.enabled = micOpen();
  pc.addTrack(sendTrack, micStream);
  const channel = pc.createDataChannel("duplex", { ordered: true });
  channel.binaryType = "arraybuffer";
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    const player = $("agent-audio");
    player.srcObject = stream; // plays it (Chrome feeds Web Audio only from a playing stream)
    player.play().catch(() => {});
    audioCtx.createMediaStreamSource(stream).connect(output); // measured, not played twice
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 3000);
  const answer = await fetch("/rtc/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
  });
  if (!answer.ok) { pc.close(); throw new Error(`offer refused: ${answer.status} ${await answer.text()}`); }
  await pc.setRemoteDescription(await answer.json());
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connection within 8 s")), RTC_TIMEOUT_MS);
    channel.onopen = () => { clearTimeout(timer); resolve(); };
  }).catch((err) => { pc.close(); throw err; });
  const pinger = setInterval(() => channel.readyState === "open" && channel.send('{"type":"ping"}'), config.keepaliveMs || 2500);
  const closed = () => { clearInterval(pinger); pc.close(); setState("disconnected"); cleanup(); };
  channel.onmessage = (m) => { if (typeof m.data === "string") onEvent(JSON.parse(m.data)); };
  channel.onclose = closed;
  pc.onconnectionstatechange = () => { if (pc.connectionState === "failed") closed(); };
  return {
    name: "WebRTC", rate: 48000,
    open: () => channel.readyState === "open",
    send: (data) => channel.send(data),
    close: () => { channel.close(); closed(); },
  };
}

function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // send what was gathered so far
  });
}

// The WebSocket: PCM16 frames from an AudioWorklet out, JSON events and PCM frames back.
async function connectWs(output) {
  output.connect(audioCtx.destination); // Web Audio plays the frames here
  await audioCtx.audioWorklet.addModule("/capture-worklet.js");
  capture = new AudioWorkletNode(audioCtx, "capture-processor");
  audioCtx.createMediaStreamSource(micStream).connect(capture);
  const key = $("key").value.trim();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${key ? "?key=" + encodeURIComponent(key) : ""}`;
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("WebSocket failed")); });
  ws.onmessage = (m) => (typeof m.data === "string" ? onEvent(JSON.parse(m.data)) : play(m.data));
  ws.onclose = () => { setState("disconnected"); cleanup(); };
  capture.port.onmessage = (e) => {
    if (ws.readyState !== 1 || stats.state === "connecting" || uploading) return;
    ws.send(micOpen() ? e.data : new ArrayBuffer(e.data.byteLength)); // silence when muted
  };
  return {
    name: "WebSocket", rate: audioCtx.sampleRate,
    open: () => ws.readyState === 1,
    send: (data) => ws.send(data),
    close: () => ws.close(),
  };
}

function cleanup() {
  flush();
  if (levelTimer) clearInterval(levelTimer);
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  if (sendTrack) sendTrack.stop();
  if (audioCtx) audioCtx.close();
  link = audioCtx = micStream = capture = levelTimer = sendTrack = null;
  talking = false;
  $("talk").classList.remove("held");
  $("transport").textContent = "–";
  $("connect").disabled = $("ptt").disabled = false;
  $("hangup").disabled = true;
  setCloning(false);
}

function setCloning(enabled) {
  for (const id of ["clip-record", "clip-file", "clip-clear"]) $(id).disabled = !enabled;
}

function onEvent(e) {
  stats.events.push(e.action ? `${e.type}:${e.action}` : e.type);
  stats.timeline.push([performance.now(), e.action ? `${e.type}:${e.action}` : e.type]);
  switch (e.type) {
    case "ready":
      stats.turnDetection = e.turn_detection;
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
      heard = e.text ? { asr_ms: e.asr_ms, end_of_turn_ms: e.end_of_turn_ms } : heard;
      if (liveYou && !e.text) liveYou.remove();
      else if (e.text) (liveYou || log("you", "")).textContent = "You: " + e.text;
      liveYou = null;
      break;
    case "tts_start": // the reply's text may have come first: one line per reply
      if (!currentReply) currentReply = log("agent", "Agent: ");
      setState("agent speaking");
      break;
    case "reply":
      stats.replies.push(e.text);
      if (!currentReply) currentReply = log("agent", "Agent: ");
      currentReply.textContent += e.text;
      break;
    case "tts_end":
      if (e.interrupted && currentReply) currentReply.textContent += " [interrupted]";
      if (e.interrupted) markStopped(e.turn);
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
      stats.turns.push({
        turn: e.turn, asr_ms: null, end_of_turn_ms: null, ...(heard || {}),
        first_audio_ms: e.first_audio_ms, voice_to_voice_ms: e.voice_to_voice_ms ?? null, stopped: false,
      });
      heard = null;
      drawChart();
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

// Every 20 ms: the level of what the page plays (stats.levels holds [time, rms] while loud)
// and of the microphone, shown on the meter from -60 to 0 dBFS.
function measureLevels(output, mic) {
  const buf = new Float32Array(output.fftSize);
  const rmsOf = (analyser) => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    return Math.sqrt(sum / buf.length);
  };
  levelTimer = setInterval(() => {
    if (!audioCtx) return;
    const rms = rmsOf(output);
    stats.peakRms = Math.max(stats.peakRms, rms);
    if (rms > 0.01) stats.levels.push([performance.now(), rms]);
    const level = Math.min(1, Math.max(0, (20 * Math.log10(rmsOf(mic) + 1e-9) + 60) / 60));
    $("mic-level").value = level;
    stats.micPeak = Math.max(stats.micPeak, level);
    if (level > 0.4) stats.micLoudAt = performance.now(); // about -36 dBFS: a voice
  }, 20);
}

// A reply stopped by a barge-in (its tts_end says interrupted) is marked on the chart.
function markStopped(turn) {
  const record = stats.turns.find((t) => t.turn === turn);
  if (record && !record.stopped) { record.stopped = true; drawChart(); }
}

// Grouped bars per turn, drawn as SVG; each bar carries its figures as data attributes.
function drawChart() {
  const svg = $("latency-chart");
  const ns = "http://www.w3.org/2000/svg";
  const el = (name, attrs, text) => {
    const node = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return svg.appendChild(node);
  };
  svg.replaceChildren();
  const turns = stats.turns.slice(-TURNS_SHOWN);
  const values = turns.flatMap((t) => SERIES.map(([key]) => t[key] || 0));
  const top = Math.max(500, ...values) * 1.1;
  const [left, bottom, height, slot] = [44, 130, 115, (600 - 44) / TURNS_SHOWN];
  el("text", { x: 2, y: 22, "font-size": 10, fill: "#888" }, `${Math.round(top)} ms`);
  el("line", { x1: left, y1: bottom, x2: 600, y2: bottom, stroke: "#ccc" });
  turns.forEach((t, i) => {
    const x0 = left + i * slot + 4;
    SERIES.forEach(([key, , color], j) => {
      if (t[key] === null || t[key] === undefined) return;
      const h = (t[key] / top) * height;
      el("rect", {
        x: x0 + j * 9, y: bottom - h, width: 8, height: h, fill: color,
        "data-turn": t.turn, "data-series": key, "data-ms": Math.round(t[key]),
      }).appendChild(document.createElementNS(ns, "title")).textContent =
        `turn ${t.turn}: ${key.replace("_ms", "")} ${Math.round(t[key])} ms`;
    });
    el("text", { x: x0, y: bottom + 13, "font-size": 10, fill: "#666" }, `#${t.turn}`);
    if (t.stopped) {
      el("text", { x: x0 + 26, y: bottom + 13, "font-size": 11, fill: "#b00", class: "stop", "data-turn": t.turn }, "✕");
    }
  });
}

function drawLegend() {
  const legend = $("latency-legend");
  for (const [, label, color] of SERIES) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    legend.append(swatch, label);
  }
  legend.append(" · ✕ barge-in stopped the reply");
}

async function loadModels() {
  const r = await fetch("/api/models", { headers: authHeaders() });
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
  link.send(JSON.stringify({ type: "clone_start" }));
  setTimeout(() => link && link.open() && link.send(JSON.stringify({ type: "clone_end" })), RECORD_S * 1000);
}

async function uploadClip(file) {
  const rate = link.rate;
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
    link.send(JSON.stringify({ type: "clone_start" }));
    for (let i = 0; i + step <= mono.length; i += step) {
      const pcm = new Int16Array(step);
      for (let j = 0; j < step; j++) {
        const v = Math.max(-1, Math.min(1, mono[i + j]));
        pcm[j] = v < 0 ? v * 32768 : v * 32767;
      }
      link.send(pcm.buffer);
    }
    link.send(JSON.stringify({ type: "clone_end" }));
  } finally {
    uploading = false;
  }
}

function talk(on) {
  if (!stats.pushToTalk || on === talking) return;
  talking = on;
  if (sendTrack) sendTrack.enabled = micOpen();
  $("talk").classList.toggle("held", on);
  stats.held.push([performance.now(), on]);
  if (!on) setTimeout(() => linked() && link.send(JSON.stringify({ type: "end_turn" })), END_TURN_DELAY_MS);
}

const linked = () => link && link.open();
$("ptt").onchange = (e) => { // only while disconnected: it sets the next session's turns
  stats.pushToTalk = e.target.checked;
  $("talk").disabled = !stats.pushToTalk;
};
$("talk").onpointerdown = () => talk(true);
$("talk").onpointerup = $("talk").onpointerleave = () => talk(false);
const typing = (e) => e.target instanceof HTMLInputElement && e.target.type !== "checkbox";
document.addEventListener("keydown", (e) => {
  if (e.code === "Space" && stats.pushToTalk && !typing(e)) { e.preventDefault(); talk(true); }
});
document.addEventListener("keyup", (e) => {
  if (e.code === "Space" && stats.pushToTalk && !typing(e)) { e.preventDefault(); talk(false); }
});
$("clip-record").onclick = () => linked() && recordClip();
$("clip-file").onchange = (e) => {
  const file = e.target.files[0];
  if (file && linked()) uploadClip(file).catch((err) => log("error", "voice clip: " + err));
  e.target.value = "";
};
$("clip-clear").onclick = () => linked() && link.send(JSON.stringify({ type: "clone_clear" }));
$("connect").onclick = () => connect().catch((err) => { log("error", String(err)); cleanup(); });
$("hangup").onclick = () => link && link.close();
$("model").onchange = () => linked() && link.send(JSON.stringify({ type: "model", model: $("model").value }));
$("type-form").onsubmit = (e) => {
  e.preventDefault();
  const text = $("type-text").value.trim();
  if (text && linked()) { link.send(JSON.stringify({ type: "say", text })); $("type-text").value = ""; }
};
drawLegend();
drawChart();
loadModels().catch(() => {});
