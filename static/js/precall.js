// « Tester ma vidéo »: the camera and microphone go to the server's echo peer and come back.
// The verdict reads getStats: frames decoded from the echo, the microphone level, the round
// trip and the bitrate. A failed session is replaced by a new peer connection (the echo peer,
// on aiortc, cannot restart ICE). The test can be run again (« Relancer le test »), with the
// camera and microphone chosen in the lists (choosing one runs it again); « Tester le
// haut-parleur » plays a short tone, on the chosen output where the browser can choose one.
(function () {
  "use strict";

  var root = document.getElementById("precall");
  if (!root || !window.RTCPeerConnection) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var iceServers = JSON.parse(root.dataset.iceServers || "[]");
  var $ = function (id) { return document.getElementById(id); };
  var local = $("precall-local"), remote = $("precall-remote"), verdict = $("precall-verdict");
  var start = $("precall-start"), camera = $("precall-camera"), micro = $("precall-micro");
  var output = $("precall-output"), toneButton = $("precall-tone"), toneStatus = $("precall-tone-status");
  var fields = {
    level: $("precall-level"),
    levelBar: $("precall-level-bar"),
    rtt: $("precall-rtt"),
    bitrate: $("precall-bitrate"),
    frames: $("precall-frames"),
    state: $("precall-state")
  };
  var AudioCtx = window.AudioContext || window.webkitAudioContext;
  var canChooseOutput = Boolean((AudioCtx && AudioCtx.prototype.setSinkId) || HTMLMediaElement.prototype.setSinkId);
  // One run: its stream, peer connection, timers and meter; a new run throws the old one away.
  var stream = null, pc = null, attempts = 0, lastBytes = null, lastAt = null, loudest = 0;
  var timers = [], meterCtx = null, toneCtx = null, run = 0;
  var result = { runs: 0, framesDecoded: 0, rtt: null, bitrate: 0, level: 0, state: "new", camera: null, micro: null, lastTone: null };
  window.telmiPrecall = result; // read by the browser test

  function say(text, kind) {
    verdict.textContent = text;
    verdict.className = "verdict " + (kind || "");
    root.dataset.verdict = kind || "";
  }

  function gathered(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var done = function () {
        if (peer.iceGatheringState === "complete") { peer.removeEventListener("icegatheringstatechange", done); resolve(); }
      };
      peer.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000); // enough candidates by then on any network worth testing
    });
  }

  // --- devices -----------------------------------------------------------------------------------

  var deviceProblem = window.telmiMediaWords.deviceProblem; // static/js/media-words.js

  function fill(select, devices, kind, name) {
    var chosen = select.value;
    var first = select.options[0];
    select.replaceChildren(first);
    devices.filter(function (d) { return d.kind === kind && d.deviceId && d.deviceId !== "default"; }).forEach(function (d, i) {
      var option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || name + " " + (i + 1);
      select.appendChild(option);
    });
    if (chosen && Array.from(select.options).some(function (o) { return o.value === chosen; })) select.value = chosen;
  }

  async function listDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    var devices = await navigator.mediaDevices.enumerateDevices();
    fill(camera, devices, "videoinput", "Caméra");
    fill(micro, devices, "audioinput", "Micro");
    if (canChooseOutput) {
      fill(output, devices, "audiooutput", "Haut-parleur");
      $("precall-output-box").hidden = output.options.length < 2;
    }
  }

  function constraints() {
    return {
      video: camera.value ? { deviceId: { exact: camera.value } } : true,
      audio: micro.value ? { deviceId: { exact: micro.value } } : true
    };
  }

  // --- the echo ----------------------------------------------------------------------------------

  function meter(mine) {
    if (!AudioCtx || !stream.getAudioTracks().length) return;
    meterCtx = new AudioCtx();
    var analyser = meterCtx.createAnalyser();
    analyser.fftSize = 512;
    meterCtx.createMediaStreamSource(stream).connect(analyser);
    var data = new Uint8Array(analyser.fftSize);
    (function tick() {
      if (mine !== run) return;
      analyser.getByteTimeDomainData(data);
      var peak = 0;
      for (var i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i] - 128));
      var level = Math.min(1, peak / 64);
      loudest = Math.max(loudest, level);
      result.level = loudest;
      fields.level.textContent = Math.round(level * 100) + " %";
      fields.levelBar.value = level;
      requestAnimationFrame(tick);
    })();
  }

  async function connect(mine) {
    attempts += 1;
    if (pc) pc.close();
    var peer = pc = new RTCPeerConnection({ iceServers: iceServers });
    stream.getTracks().forEach(function (t) { peer.addTrack(t, stream); });
    var channel = peer.createDataChannel("rtt");
    channel.onopen = function () {
      timers.push(setInterval(function () { if (channel.readyState === "open") channel.send("ping:" + performance.now()); }, 1000));
    };
    channel.onmessage = function (event) {
      var sent = parseFloat(String(event.data).split(":")[1]);
      if (!isNaN(sent)) result.rtt = Math.round(performance.now() - sent);
    };
    peer.ontrack = function (event) {
      if (event.track.kind === "video") remote.srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    peer.onconnectionstatechange = function () {
      if (peer !== pc || mine !== run) return; // an earlier run or attempt, closed
      result.state = peer.connectionState;
      fields.state.textContent = { connected: "connecté", connecting: "connexion…", failed: "échec", disconnected: "interrompu", "new": "—", closed: "fermé" }[peer.connectionState] || peer.connectionState;
      if (peer.connectionState === "failed" && attempts < 3) {
        say("Connexion perdue, nouvel essai…", "pending");
        connect(mine).catch(function (err) { say("Échec : " + err.message, "bad"); });
      } else if (peer.connectionState === "failed") {
        say("Échec : la connexion vidéo est bloquée. Vérifiez le pare-feu ou le réseau de l'établissement, puis contactez le support.", "bad");
      }
    };
    await peer.setLocalDescription(await peer.createOffer());
    await gathered(peer);
    var response = await fetch("/api/precall/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ type: "offer", sdp: peer.localDescription.sdp })
    });
    if (!response.ok) {
      var problem = await response.json().catch(function () { return {}; });
      throw new Error((problem.error && problem.error.message) || "Le serveur de test ne répond pas.");
    }
    if (peer !== pc) return;
    await peer.setRemoteDescription(await response.json());
  }

  async function stats() {
    if (!pc) return;
    var report = await pc.getStats();
    report.forEach(function (s) {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        result.framesDecoded = s.framesDecoded || 0;
        if (lastBytes !== null) result.bitrate = Math.round(((s.bytesReceived - lastBytes) * 8) / ((s.timestamp - lastAt) / 1000) / 1000);
        lastBytes = s.bytesReceived; lastAt = s.timestamp;
      }
      if (s.type === "candidate-pair" && s.state === "succeeded" && s.currentRoundTripTime !== undefined && result.rtt === null) {
        result.rtt = Math.round(s.currentRoundTripTime * 1000);
      }
    });
    fields.frames.textContent = result.framesDecoded;
    fields.rtt.textContent = result.rtt === null ? "—" : result.rtt + " ms";
    fields.bitrate.textContent = result.bitrate ? result.bitrate + " kbit/s" : "—";
    judge();
  }

  function judge() {
    if (result.state !== "connected") return;
    var problems = [];
    if (result.framesDecoded === 0) problems.push("la vidéo ne revient pas encore");
    if (result.rtt !== null && result.rtt > 400) problems.push("le réseau est lent (" + result.rtt + " ms aller-retour)");
    if (result.bitrate && result.bitrate < 150) problems.push("le débit est faible (" + result.bitrate + " kbit/s)");
    if (!stream.getAudioTracks().length) problems.push("aucun micro détecté");
    else if (loudest < 0.02) problems.push("le micro semble muet : parlez pour le tester");
    if (!problems.length) say("Prêt : votre caméra, votre micro et votre connexion fonctionnent pour une téléconsultation.", "ok");
    else if (result.framesDecoded > 0) say("Presque prêt : " + problems.join(" ; ") + ".", "warn");
    else say("Test en cours : " + problems.join(" ; ") + "…", "pending");
  }

  function stop() {
    timers.forEach(clearInterval);
    timers = [];
    if (pc) { pc.close(); pc = null; }
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    if (meterCtx) { meterCtx.close(); meterCtx = null; }
    local.srcObject = null;
    remote.srcObject = null;
  }

  // The button is disabled while the run starts; the keyboard focus it held comes back to it.
  function enable(hadFocus) {
    start.disabled = false;
    if (hadFocus && (document.activeElement === document.body || !document.activeElement)) start.focus();
  }

  async function test() {
    var mine = ++run, hadFocus = document.activeElement === start;
    stop();
    attempts = 0; lastBytes = null; lastAt = null; loudest = 0;
    Object.assign(result, { runs: mine, framesDecoded: 0, rtt: null, bitrate: 0, level: 0, state: "new" });
    ["rtt", "bitrate", "state"].forEach(function (k) { fields[k].textContent = "—"; });
    fields.frames.textContent = "0";
    start.disabled = true;
    say(mine > 1 ? "Nouveau test : accès à la caméra et au micro…" : "Accès à la caméra et au micro…", "pending");
    var next;
    try {
      next = await navigator.mediaDevices.getUserMedia(constraints());
    } catch (err) {
      if (mine === run) {
        say(deviceProblem(err), "bad");
        enable(hadFocus);
      }
      return;
    }
    if (mine !== run) { next.getTracks().forEach(function (t) { t.stop(); }); return; }
    stream = next;
    var video = stream.getVideoTracks()[0], audio = stream.getAudioTracks()[0];
    result.camera = video ? video.getSettings().deviceId || null : null;
    result.micro = audio ? audio.getSettings().deviceId || null : null;
    await listDevices().catch(function () { /* the lists stay as they were */ });
    local.srcObject = stream;
    meter(mine);
    say("Connexion au serveur de test…", "pending");
    try {
      await connect(mine);
    } catch (err) {
      if (mine === run) say("Échec : " + err.message, "bad");
      return;
    } finally {
      if (mine === run) { start.textContent = "Relancer le test"; enable(hadFocus); }
    }
    if (mine === run) timers.push(setInterval(stats, 1000));
  }

  // --- the speaker -------------------------------------------------------------------------------

  async function tone() {
    if (!AudioCtx) {
      toneStatus.textContent = "Ce navigateur ne sait pas jouer le son de test.";
      return;
    }
    if (!toneCtx) toneCtx = new AudioCtx();
    if (toneCtx.state === "suspended") await toneCtx.resume();
    var sink = output.value, routed = false;
    if (canChooseOutput && toneCtx.setSinkId) {
      try { await toneCtx.setSinkId(sink); routed = true; } catch (err) { routed = false; }
    }
    var at = toneCtx.currentTime, osc = toneCtx.createOscillator(), gain = toneCtx.createGain();
    var analyser = toneCtx.createAnalyser();
    osc.frequency.value = 440;
    gain.gain.setValueAtTime(0.25, at);
    gain.gain.setValueAtTime(0.25, at + 0.6);
    gain.gain.exponentialRampToValueAtTime(0.001, at + 0.9);
    osc.connect(gain);
    gain.connect(toneCtx.destination);
    gain.connect(analyser);
    osc.start(at);
    osc.stop(at + 0.9);
    var played = { frequency: 440, state: toneCtx.state, sinkId: sink || "default", routed: routed, peak: 0 };
    result.lastTone = played;
    toneStatus.textContent = "Un bip est joué pendant une seconde. Vous ne l'entendez pas ? Montez le volume" +
      (canChooseOutput ? " ou choisissez un autre haut-parleur." : ".");
    setTimeout(function () { // what went out: the tone really played
      var data = new Float32Array(analyser.fftSize);
      analyser.getFloatTimeDomainData(data);
      played.peak = data.reduce(function (m, v) { return Math.max(m, Math.abs(v)); }, 0);
      played.state = toneCtx.state;
    }, 250);
  }

  start.addEventListener("click", test);
  [camera, micro].forEach(function (select) {
    select.addEventListener("change", function () { if (run) test(); });
  });
  output.addEventListener("change", function () {
    if (remote.setSinkId) remote.setSinkId(output.value).catch(function () { /* the default stays */ });
  });
  toneButton.addEventListener("click", function () {
    tone().catch(function () { toneStatus.textContent = "Le son de test n'a pas pu être joué : vérifiez le haut-parleur choisi et le volume."; });
  });
  listDevices().catch(function () { /* filled after the first run */ });
})();
