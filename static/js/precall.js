// « Tester ma vidéo »: the camera and microphone go to the server's echo peer and come back.
// The verdict reads getStats: frames decoded from the echo, the microphone level, the round
// trip and the bitrate. A failed session is replaced by a new peer connection (the echo peer,
// on aiortc, cannot restart ICE).
(function () {
  "use strict";

  var root = document.getElementById("precall");
  if (!root || !window.RTCPeerConnection) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var iceServers = JSON.parse(root.dataset.iceServers || "[]");
  var local = document.getElementById("precall-local");
  var remote = document.getElementById("precall-remote");
  var verdict = document.getElementById("precall-verdict");
  var fields = {
    level: document.getElementById("precall-level"),
    levelBar: document.getElementById("precall-level-bar"),
    rtt: document.getElementById("precall-rtt"),
    bitrate: document.getElementById("precall-bitrate"),
    frames: document.getElementById("precall-frames"),
    state: document.getElementById("precall-state")
  };
  var stream = null, pc = null, attempts = 0, lastBytes = null, lastAt = null, loudest = 0;
  var result = { framesDecoded: 0, rtt: null, bitrate: 0, level: 0, state: "new" };
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

  function meter() {
    var AudioCtx = window.AudioContext || window.webkitAudioContext;
    if (!AudioCtx || !stream.getAudioTracks().length) return;
    var ctx = new AudioCtx();
    var analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    ctx.createMediaStreamSource(stream).connect(analyser);
    var data = new Uint8Array(analyser.fftSize);
    (function tick() {
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

  async function connect() {
    attempts += 1;
    if (pc) pc.close();
    pc = new RTCPeerConnection({ iceServers: iceServers });
    stream.getTracks().forEach(function (t) { pc.addTrack(t, stream); });
    var channel = pc.createDataChannel("rtt");
    channel.onopen = function () {
      setInterval(function () { if (channel.readyState === "open") channel.send("ping:" + performance.now()); }, 1000);
    };
    channel.onmessage = function (event) {
      var sent = parseFloat(String(event.data).split(":")[1]);
      if (!isNaN(sent)) result.rtt = Math.round(performance.now() - sent);
    };
    pc.ontrack = function (event) {
      if (event.track.kind === "video") remote.srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    pc.onconnectionstatechange = function () {
      result.state = pc.connectionState;
      fields.state.textContent = { connected: "connecté", connecting: "connexion…", failed: "échec", disconnected: "interrompu", "new": "—", closed: "fermé" }[pc.connectionState] || pc.connectionState;
      if (pc.connectionState === "failed" && attempts < 3) {
        say("Connexion perdue, nouvel essai…", "pending");
        connect();
      } else if (pc.connectionState === "failed") {
        say("Échec : la connexion vidéo est bloquée. Vérifiez le pare-feu ou le réseau de l'établissement, puis contactez le support.", "bad");
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    var response = await fetch("/api/precall/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp })
    });
    if (!response.ok) {
      var problem = await response.json().catch(function () { return {}; });
      throw new Error((problem.error && problem.error.message) || "Le serveur de test ne répond pas.");
    }
    await pc.setRemoteDescription(await response.json());
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

  document.getElementById("precall-start").addEventListener("click", async function (event) {
    event.target.disabled = true;
    say("Accès à la caméra et au micro…", "pending");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch (err) {
      say("Caméra ou micro inaccessible (" + err.name + ") : autorisez-les dans le navigateur, ou vérifiez qu'aucune autre application ne les utilise.", "bad");
      event.target.disabled = false;
      return;
    }
    local.srcObject = stream;
    meter();
    say("Connexion au serveur de test…", "pending");
    try {
      await connect();
    } catch (err) {
      say("Échec : " + err.message, "bad");
      return;
    }
    setInterval(stats, 1000);
  });
})();
