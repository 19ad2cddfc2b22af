// The consultation room: preview and device choice, then a mesh call over Telmi's signaling
// (protocol v1, see ARCHITECTURE.md). Perfect negotiation per pair: the newcomer offers first
// and is the polite side; ICE failures call restartIce(); a dropped socket reconnects with the
// resume token and the page says so. The join token is fetched just before joining and only
// ever sent in the first WebSocket frame. When the call ends for this page (ended by the
// specialist, left, or refused at the lobby) the camera and microphone are released, the call
// controls go and a link leads back (its target comes from the page, not from this file).
// Members can invite a guest: a single-use link, shown once, to copy.
// Accessibility: toggles keep their label and say their state with aria-pressed; a polite log
// announces the waiting room, arrivals and departures, connection changes; errors go to an
// alert. Weak networks: « Audio seul » stops sending video (the sender's track is replaced by
// none, the camera is released) and tells the others, whose tile shows initials; getStats
// measures each pair every 2 s (a quality per participant, in words) and suggests audio only
// when the outbound side stays bad; video bitrate and resolution are capped by the number of
// participants and re-applied as people come and go.
(function () {
  "use strict";

  var root = document.getElementById("room");
  if (!root || !window.RTCPeerConnection || !window.WebSocket) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var mode = root.dataset.mode; // "member" (specialist, staff) or "guest"
  var isHost = root.dataset.role === "specialist";
  var $ = function (id) { return document.getElementById(id); };
  var preview = $("room-preview"), stage = $("room-stage"), list = $("room-participants");
  var lobby = $("room-lobby"), status = $("room-status");
  var announcer = $("room-announce"), alertBox = $("room-alert");
  var stream = null, ws = null, me = null, ticket = null, ended = false, finished = false, retries = 0;
  var iceServers = [];
  var peers = new Map();
  var audioOnly = false, weakCount = 0, weakDismissedAt = -Infinity, sampling = null;

  function setStatus(text, state) {
    status.textContent = text;
    root.dataset.state = state;
  }

  // The polite log (the last few messages; each new line is announced once).
  function announce(text) {
    var line = document.createElement("p");
    line.textContent = text;
    announcer.appendChild(line);
    while (announcer.children.length > 6) announcer.firstElementChild.remove();
  }

  // Errors: an assertive alert, visible, emptied when things are fine again.
  function alarm(text) {
    alertBox.textContent = text || "";
    alertBox.classList.toggle("alert", Boolean(text));
  }

  var deviceProblem = window.telmiMediaWords.deviceProblem; // static/js/media-words.js

  // Keyboard focus must not fall to the page when what held it disappears.
  function keepFocus(from, to) {
    if (to && (!from || from.contains(document.activeElement) || document.activeElement === document.body)) to.focus();
  }

  function initials(name) {
    var words = String(name || "").replace(/^(Dr|Pr|M\.|Mme)\s+/i, "").split(/[\s'’-]+/).filter(Boolean);
    var letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?")[0];
    return letters.toUpperCase();
  }

  async function post(url, body) {
    var response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error((data.error && data.error.message) || "Erreur " + response.status);
    return data;
  }

  // --- preview and devices ---------------------------------------------------------------------

  async function acquire() {
    if (finished) return;
    var micro = $("room-micro").value;
    var next = await navigator.mediaDevices.getUserMedia({
      video: audioOnly ? false : cameraConstraint(),
      audio: micro ? { deviceId: { exact: micro } } : true
    });
    if (stream) {
      next.getTracks().forEach(function (track) {
        var old = stream.getTracks().find(function (t) { return t.kind === track.kind; });
        if (old) track.enabled = old.enabled; // a muted micro stays muted on another device
      });
      peers.forEach(function (peer) {
        peer.pc.getSenders().forEach(function (sender) {
          var kind = sender === peer.videoSender ? "video" : sender.track && sender.track.kind;
          var track = kind && next.getTracks().find(function (t) { return t.kind === kind; });
          if (track) sender.replaceTrack(track);
        });
      });
      stream.getTracks().forEach(function (t) {
        t.stop();
        if (audioOnly && t.kind === "video") next.addTrack(t); // ended, kept for new peers' senders
      });
    }
    if (finished) { next.getTracks().forEach(function (t) { t.stop(); }); return; }
    stream = next;
    preview.srcObject = stream;
    var devices = await navigator.mediaDevices.enumerateDevices();
    fill($("room-camera"), devices, "videoinput");
    fill($("room-micro"), devices, "audioinput");
  }

  function cameraConstraint() {
    var camera = $("room-camera").value;
    return camera ? { deviceId: { exact: camera } } : true;
  }

  function fill(select, devices, kind) {
    var chosen = select.value;
    select.innerHTML = "";
    devices.filter(function (d) { return d.kind === kind; }).forEach(function (d, i) {
      var option = document.createElement("option");
      option.value = d.deviceId;
      option.textContent = d.label || (kind === "videoinput" ? "Caméra " : "Micro ") + (i + 1);
      select.appendChild(option);
    });
    if (chosen) select.value = chosen;
  }

  // --- peers (perfect negotiation) -------------------------------------------------------------

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function tile(info) {
    var figure = document.createElement("figure");
    figure.className = "tile";
    var video = document.createElement("video");
    video.autoplay = true; video.playsInline = true;
    var face = document.createElement("div");
    face.className = "initials";
    face.setAttribute("aria-hidden", "true"); // the caption names the person
    face.textContent = initials(info.name);
    var caption = document.createElement("figcaption");
    figure.appendChild(video); figure.appendChild(face); figure.appendChild(caption);
    stage.appendChild(figure);
    return { figure: figure, video: video, face: face, caption: caption };
  }

  function addPeer(info) {
    if (peers.has(info.participant_id)) return peers.get(info.participant_id);
    var pc = new RTCPeerConnection({ iceServers: iceServers });
    var peer = {
      info: info, pc: pc, view: tile(info),
      polite: me.seq > info.seq, canOffer: me.seq > info.seq,
      makingOffer: false, ignoreOffer: false,
      videoSender: null, quality: null, last: null, seenState: "new"
    };
    peers.set(info.participant_id, peer);
    pc.onnegotiationneeded = async function () {
      if (!peer.canOffer) return;
      try {
        peer.makingOffer = true;
        await pc.setLocalDescription();
        send({ type: "offer", to: info.participant_id, sdp: pc.localDescription.sdp });
      } finally {
        peer.makingOffer = false;
      }
    };
    pc.onicecandidate = function (event) {
      send({ type: "candidate", to: info.participant_id, candidate: event.candidate ? event.candidate.toJSON() : null });
    };
    pc.ontrack = function (event) {
      peer.view.video.srcObject = event.streams[0] || new MediaStream([event.track]);
    };
    pc.oniceconnectionstatechange = function () {
      if (pc.iceConnectionState === "failed") pc.restartIce();
    };
    pc.onconnectionstatechange = function () {
      var state = pc.connectionState, name = peer.info.name;
      if (state === "failed" || state === "disconnected") {
        if (peer.seenState === "connected") announce("Connexion avec " + name + " interrompue : nouvel essai…");
      } else if (state === "connected") {
        if (peer.seenState === "failed" || peer.seenState === "disconnected") announce("Connexion avec " + name + " rétablie.");
        applyCaps();
      }
      if (state !== "connecting" && state !== "new") peer.seenState = state;
      render();
    };
    stream.getTracks().forEach(function (t) {
      var sender = pc.addTrack(t, stream);
      if (t.kind === "video") {
        peer.videoSender = sender;
        if (audioOnly) sender.replaceTrack(null);
      }
    });
    render();
    applyCaps();
    return peer;
  }

  function removePeer(id) {
    var peer = peers.get(id);
    if (!peer) return;
    peer.pc.close();
    peer.view.figure.remove();
    if (peer.item) peer.item.remove();
    peers.delete(id);
    render();
    applyCaps();
  }

  async function onDescription(from, description) {
    var peer = peers.get(from);
    if (!peer) return;
    var pc = peer.pc;
    var collision = description.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable");
    peer.ignoreOffer = !peer.polite && collision;
    if (peer.ignoreOffer) return;
    await pc.setRemoteDescription(description);
    if (description.type === "offer") {
      peer.canOffer = true;
      await pc.setLocalDescription();
      send({ type: "answer", to: from, sdp: pc.localDescription.sdp });
    }
  }

  async function onCandidate(from, candidate) {
    var peer = peers.get(from);
    if (!peer) return;
    try {
      await peer.pc.addIceCandidate(candidate || null);
    } catch (err) {
      if (!peer.ignoreOffer) console.warn("candidate refused", err);
    }
  }

  var STATES = { connected: "connecté", connecting: "connexion…", reconnecting: "reconnexion…", failed: "échec", "new": "connexion…", disconnected: "interrompu" };

  var QUALITY = { bonne: "connexion bonne", moyenne: "connexion moyenne", faible: "connexion faible" };

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // The list and the captions are updated in place (every 2 s the quality may change): a
  // screen reader reading the list does not lose its place.
  function render() {
    var mine = $("room-me");
    if (!mine) {
      mine = document.createElement("li");
      mine.id = "room-me";
      list.prepend(mine);
    }
    setText(mine, "Vous (" + root.dataset.name + ")" + (audioOnly ? " · audio seul" : ""));
    var self = $("room-self");
    if (self) self.classList.toggle("no-video", audioOnly);
    peers.forEach(function (peer) {
      var media = peer.info.state === "reconnecting" ? "reconnecting" : peer.pc.connectionState;
      var state = peer.info.media || {};
      if (!peer.item) {
        peer.item = document.createElement("li");
        peer.item.appendChild(document.createElement("span"));
        var badge = document.createElement("span");
        badge.className = "quality";
        peer.item.appendChild(badge);
        list.appendChild(peer.item);
      }
      var notes = (state.audio === false ? " · micro coupé" : "") +
        (state.audio_only ? " · audio seul" : state.video === false ? " · caméra coupée" : "");
      peer.item.dataset.state = media;
      setText(peer.item.firstChild, peer.info.name + " — " + (STATES[media] || media) + notes + (peer.quality ? " · " : ""));
      var quality = peer.item.lastChild;
      quality.dataset.quality = peer.quality || "";
      quality.hidden = !peer.quality;
      setText(quality, peer.quality ? QUALITY[peer.quality] : "");
      setText(peer.view.caption, peer.info.name + notes + (peer.quality ? " · " + QUALITY[peer.quality] : ""));
      peer.view.figure.classList.toggle("no-video", Boolean(state.audio_only || state.video === false));
      setText(peer.view.face, initials(peer.info.name));
    });
  }

  // --- weak networks: caps, quality, audio only ----------------------------------------------------

  // Video caps by the number of people in the call (self included).
  function capFor(count) {
    if (count <= 2) return { maxBitrate: 1500000, height: 720 };
    if (count === 3) return { maxBitrate: 800000, height: 540 };
    if (count <= 5) return { maxBitrate: 500000, height: 360 };
    return { maxBitrate: 300000, height: 240 };
  }

  function applyCaps() {
    var cap = capFor(peers.size + 1);
    var track = stream && stream.getVideoTracks()[0];
    var height = (track && track.getSettings().height) || cap.height;
    var scale = Math.max(1, height / cap.height);
    var pending = [];
    peers.forEach(function (peer) {
      var sender = peer.videoSender;
      if (!sender || peer.pc.signalingState === "closed") return;
      var params = sender.getParameters();
      if (!params.encodings || !params.encodings.length) return; // not negotiated yet: on connect
      var encoding = params.encodings[0];
      if (encoding.maxBitrate === cap.maxBitrate && encoding.scaleResolutionDownBy === scale) return;
      encoding.maxBitrate = cap.maxBitrate;
      encoding.scaleResolutionDownBy = scale;
      pending.push(sender.setParameters(params).catch(function (err) { console.warn("video cap refused", err); }));
    });
    return Promise.all(pending);
  }

  // A measure, in words: what arrives from a participant (loss) and the round trip to them.
  function quality(sample) {
    if (sample.received === 0) return "faible";
    if (sample.loss < 0.02 && sample.rtt < 0.3) return "bonne";
    if (sample.loss < 0.08 && sample.rtt < 0.6) return "moyenne";
    return "faible";
  }

  async function measure(peer) {
    if (peer.pc.connectionState !== "connected") { peer.quality = null; peer.last = null; return null; }
    var report = await peer.pc.getStats();
    var now = { at: 0, videoBytes: 0, received: 0, lost: 0, rtt: 0, remoteLoss: 0 };
    report.forEach(function (s) {
      if (s.type === "outbound-rtp" && s.kind === "video") { now.videoBytes += s.bytesSent || 0; now.at = s.timestamp; }
      if (s.type === "inbound-rtp") { now.received += s.packetsReceived || 0; now.lost += Math.max(0, s.packetsLost || 0); }
      if (s.type === "remote-inbound-rtp") {
        now.remoteLoss = Math.max(now.remoteLoss, s.fractionLost || 0);
        now.rtt = Math.max(now.rtt, s.roundTripTime || 0);
      }
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") now.rtt = Math.max(now.rtt, s.currentRoundTripTime || 0);
    });
    var last = peer.last;
    peer.last = now;
    if (!last) return null;
    var received = now.received - last.received, lost = now.lost - last.lost;
    var seconds = Math.max(0.5, (now.at - last.at) / 1000);
    var sample = {
      received: received,
      loss: received + lost > 0 ? lost / (received + lost) : 0,
      rtt: now.rtt,
      outLoss: now.remoteLoss,
      outKbps: now.at && last.at ? ((now.videoBytes - last.videoBytes) * 8) / seconds / 1000 : null // null: no video stream yet
    };
    peer.quality = quality(sample);
    return sample;
  }

  // Our own sending side, judged over a few samples: suggest audio only when it stays bad.
  function weigh(sample) {
    var camera = stream && stream.getVideoTracks()[0];
    var sendingVideo = !audioOnly && camera && camera.enabled && camera.readyState === "live";
    var slow = sample.outKbps !== null && sample.outKbps < 150;
    var weak = Boolean(sendingVideo && (slow || sample.outLoss > 0.1 || sample.rtt > 0.5));
    weakCount = weak ? weakCount + 1 : 0;
    var box = $("room-weak");
    if (weakCount >= 3 && box.hidden && performance.now() - weakDismissedAt > 120000) {
      box.hidden = false;
      announce("Connexion faible : passer en audio seul ?");
    }
    return weak;
  }

  async function sample() {
    var worst = null;
    for (var peer of Array.from(peers.values())) {
      var s = await measure(peer).catch(function () { return null; });
      if (!s) continue;
      worst = !worst ? { outKbps: s.outKbps, outLoss: s.outLoss, rtt: s.rtt } : {
        outKbps: worst.outKbps === null ? s.outKbps : s.outKbps === null ? worst.outKbps : Math.min(worst.outKbps, s.outKbps),
        outLoss: Math.max(worst.outLoss, s.outLoss),
        rtt: Math.max(worst.rtt, s.rtt)
      };
    }
    if (worst) weigh(worst);
    render();
  }

  async function setAudioOnly(on) {
    if (audioOnly === on || !stream || finished) return;
    var button = $("room-audio-only"), camera = $("room-video");
    button.disabled = true;
    try {
      var old = stream.getVideoTracks()[0];
      var senders = Array.from(peers.values()).map(function (p) { return p.videoSender; }).filter(Boolean);
      if (on) {
        audioOnly = true;
        await Promise.all(senders.map(function (s) { return s.replaceTrack(null); }));
        if (old) old.stop(); // the camera light goes off; the ended track stays for new peers
      } else {
        var fresh = (await navigator.mediaDevices.getUserMedia({ video: cameraConstraint() })).getVideoTracks()[0];
        fresh.enabled = camera.getAttribute("aria-pressed") !== "true";
        if (old) stream.removeTrack(old);
        stream.addTrack(fresh);
        await Promise.all(senders.map(function (s) { return s.replaceTrack(fresh); }));
        preview.srcObject = stream;
        audioOnly = false;
        applyCaps();
      }
      button.setAttribute("aria-pressed", String(on));
      camera.disabled = on;
      $("room-weak").hidden = true;
      weakCount = 0;
      send({ type: "update", state: { audio_only: on } });
      announce(on ? "Audio seul : votre vidéo n'est plus envoyée." : "Vidéo réactivée.");
      render();
    } catch (err) {
      alarm("Impossible de changer de mode : " + err.message);
    } finally {
      button.disabled = false;
    }
  }

  // --- the lobby ---------------------------------------------------------------------------------

  function knock(info) {
    var li = document.createElement("li");
    li.id = "knock-" + info.participant_id;
    li.dataset.name = info.name;
    li.textContent = info.name + " attend dans la salle d'attente ";
    ["Admettre", "Refuser"].forEach(function (label, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.className = i ? "secondary" : "";
      button.addEventListener("click", function () {
        send({ type: i ? "deny" : "admit", participant_id: info.participant_id });
        unknock(li);
      });
      li.appendChild(button);
    });
    lobby.appendChild(li);
    $("room-lobby-box").hidden = false;
    announce(info.name + " attend dans la salle d'attente.");
    beep();
  }

  function unknock(li) {
    var next = li.nextElementSibling || li.previousElementSibling;
    var had = li.contains(document.activeElement);
    li.remove();
    if (!lobby.children.length) $("room-lobby-box").hidden = true;
    if (had) (next ? next.querySelector("button") : $("room-mute")).focus();
  }

  function beep() {
    var AudioCtx = window.AudioContext || window.webkitAudioContext;
    if (!AudioCtx) return;
    var ctx = new AudioCtx(), osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = 660; gain.gain.value = 0.15;
    osc.connect(gain); gain.connect(ctx.destination);
    osc.start(); osc.stop(ctx.currentTime + 0.25);
  }

  // --- the socket ----------------------------------------------------------------------------------

  async function freshTicket() {
    if (mode === "guest") return ticket; // an invitation works once: reconnection uses resume
    ticket = await post("/api/bookings/" + root.dataset.booking + "/join");
    return ticket;
  }

  function open() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + ticket.ws_path);
    ws.onopen = function () {
      send({ type: "join", token: ticket.token, resume: me ? me.resume_token : undefined });
    };
    ws.onmessage = function (event) { handle(JSON.parse(event.data)); };
    ws.onclose = function () {
      if (ended) return;
      if (root.dataset.state !== "reconnecting") announce("Connexion perdue : reconnexion…");
      setStatus("Connexion perdue : reconnexion…", "reconnecting");
      var wait = Math.min(8000, 500 * Math.pow(2, retries++));
      setTimeout(async function () {
        try { if (!me) await freshTicket(); } catch (err) { /* keep trying with resume */ }
        open();
      }, wait);
    };
  }

  // What the server's error codes mean for the person in the room (never the code itself).
  var ERRORS = {
    rate_limited: "Trop d'actions à la suite : patientez un instant.",
    room_full: "La consultation a atteint son nombre maximal de participants.",
    forbidden: "Seul le spécialiste peut admettre ou refuser un invité.",
    unknown_participant: "Ce participant n'est plus dans la consultation.",
    not_in_room: "Vous n'êtes pas encore dans la consultation.",
    token_expired: "Votre accès a expiré : rechargez la page.",
    unauthorized: "Accès refusé : rechargez la page."
  };

  async function handle(frame) {
    switch (frame.type) {
      case "joined":
        retries = 0;
        var returning = me && me.participant_id === frame.participant_id;
        var admitted = root.dataset.state === "waiting";
        me = frame;
        iceServers = frame.ice_servers || [];
        var joinBox = $("room-join-box");
        $("room-call").hidden = false;
        if (!returning) keepFocus(joinBox, $("room-mute")); // the join button, disabled, lost it
        joinBox.hidden = true;
        if (!$("room-self")) {
          var self = document.createElement("figure");
          self.id = "room-self";
          self.className = "tile self";
          var caption = document.createElement("figcaption");
          caption.textContent = "Vous";
          var face = document.createElement("div");
          face.className = "initials";
          face.setAttribute("aria-hidden", "true");
          face.textContent = initials(root.dataset.name);
          self.appendChild(preview);
          self.appendChild(face);
          self.appendChild(caption);
          stage.prepend(self);
        }
        setStatus("En consultation", "connected");
        alarm("");
        if (returning) announce("Connexion rétablie.");
        else if (admitted) announce("Vous avez été admis dans la consultation.");
        else announce("Vous avez rejoint la consultation.");
        if (!returning) frame.participants.forEach(addPeer);
        (frame.waiting || []).forEach(knock);
        if (audioOnly) send({ type: "update", state: { audio_only: true } });
        if (!sampling) sampling = setInterval(sample, 2000);
        render();
        break;
      case "waiting":
        setStatus("Salle d'attente : le spécialiste va vous admettre.", "waiting");
        announce("Vous êtes en salle d'attente : le spécialiste va vous admettre.");
        break;
      case "knock": knock(frame); break;
      case "participant-joined":
        if (!peers.has(frame.participant_id)) announce(frame.name + " a rejoint la consultation.");
        addPeer(frame);
        break;
      case "participant-left":
        var leaving = peers.get(frame.participant_id), knocked = $("knock-" + frame.participant_id);
        var who = leaving ? leaving.info.name : knocked ? knocked.dataset.name : null;
        if (who) {
          announce(frame.reason === "timeout" ? who + " a perdu la connexion et a quitté la consultation."
            : frame.reason === "denied" ? who + " n'a pas été admis."
            : leaving ? who + " a quitté la consultation." : who + " a quitté la salle d'attente.");
        }
        removePeer(frame.participant_id);
        if (knocked) unknock(knocked);
        break;
      case "participant-updated":
        var peer = peers.get(frame.participant_id);
        if (peer) {
          var before = peer.info, was = before.media || {}, now = frame.media || {};
          if (frame.state === "reconnecting" && before.state !== "reconnecting") announce(frame.name + " se reconnecte…");
          if (frame.state === "connected" && before.state === "reconnecting") announce(frame.name + " est de nouveau connecté·e.");
          if (Boolean(now.audio_only) !== Boolean(was.audio_only)) {
            announce(now.audio_only ? frame.name + " passe en audio seul." : frame.name + " réactive sa vidéo.");
          }
          peer.info = frame;
          render();
        }
        break;
      case "offer": case "answer":
        await onDescription(frame.from, { type: frame.type, sdp: frame.sdp });
        break;
      case "candidate": await onCandidate(frame.from, frame.candidate); break;
      case "ice-servers":
        iceServers = frame.ice_servers;
        peers.forEach(function (p) { p.pc.setConfiguration({ iceServers: iceServers }); });
        break;
      case "error":
        if (frame.code === "room_closed" || frame.code === "denied") {
          finish(frame.code === "denied" ? "Le spécialiste ne vous a pas admis." : "La consultation est terminée.");
        } else if ((frame.code === "token_expired" || frame.code === "unauthorized") && mode !== "guest") {
          me = null; await freshTicket();
        } else {
          alarm(ERRORS[frame.code] || "Erreur de communication avec le serveur : réessayez dans un instant.");
        }
        break;
    }
  }

  // --- the end -----------------------------------------------------------------------------------

  function finish(message) {
    ended = true;
    if (finished) return;
    finished = true;
    if (sampling) clearInterval(sampling);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    peers.forEach(function (p, id) { removePeer(id); });
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    preview.srcObject = null;
    ["room-join-box", "room-stage", "room-controls", "room-people", "room-lobby-box", "room-end", "room-invite", "room-weak"]
      .forEach(function (id) { var el = $(id); if (el) el.hidden = true; });
    setStatus(message, "ended");
    announce(message);
    var after = $("room-after"), next;
    if (root.dataset.backUrl) {
      next = document.createElement("a");
      next.id = "room-back";
      next.className = "button";
      next.href = root.dataset.backUrl;
      next.textContent = root.dataset.backLabel;
    } else {
      next = document.createElement("p");
      next.textContent = "Vous pouvez fermer cette page.";
    }
    var focused = document.activeElement;
    after.replaceChildren(next);
    after.hidden = false;
    if (next.tagName === "A" && (!focused || focused === document.body || focused.closest("[hidden]"))) next.focus();
  }

  // --- controls ----------------------------------------------------------------------------------

  // A toggle keeps its label; aria-pressed (and the pressed style) says it is on.
  function toggle(kind, button) {
    var track = stream && stream.getTracks().find(function (t) { return t.kind === kind; });
    if (!track) return;
    track.enabled = !track.enabled;
    button.setAttribute("aria-pressed", String(!track.enabled)); // said by the screen reader
    var state = {}; state[kind] = track.enabled;
    send({ type: "update", state: state });
  }

  function reacquire() {
    acquire().then(function () { alarm(""); }).catch(function (err) { alarm(deviceProblem(err)); });
  }
  $("room-camera").addEventListener("change", reacquire);
  $("room-micro").addEventListener("change", reacquire);
  $("room-mute").addEventListener("click", function (e) { toggle("audio", e.currentTarget); });
  $("room-video").addEventListener("click", function (e) { toggle("video", e.currentTarget); });
  $("room-audio-only").addEventListener("click", function (e) {
    setAudioOnly(e.currentTarget.getAttribute("aria-pressed") !== "true");
  });
  $("room-weak-yes").addEventListener("click", function () {
    setAudioOnly(true).then(function () { keepFocus($("room-weak"), $("room-audio-only")); });
  });
  $("room-weak-no").addEventListener("click", function () {
    $("room-weak").hidden = true;
    weakCount = 0;
    weakDismissedAt = performance.now();
    keepFocus($("room-weak"), $("room-audio-only"));
  });
  $("room-leave").addEventListener("click", function () {
    ended = true; send({ type: "leave" });
    finish("Vous avez quitté la consultation.");
  });
  var endForm = $("room-end");
  if (endForm && isHost) {
    endForm.hidden = false;
    endForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      try {
        var notes = $("room-outcome").value.trim();
        await post("/api/consultations/" + ticket.consultation_id + "/end", {
          outcome: $("room-outcome-kind").value + (notes ? " — " + notes : ""),
          incidents: $("room-incidents").value.trim()
        });
        finish("La consultation est terminée.");
      } catch (err) {
        alarm("Erreur : " + err.message);
      }
    });
  }

  // --- inviting a guest ------------------------------------------------------------------------------

  var inviteForm = $("room-invite");
  if (inviteForm && mode === "member") {
    inviteForm.hidden = false;
    inviteForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      var error = $("room-invite-error"), button = inviteForm.querySelector("button[type=submit]");
      var label = $("room-invite-label").value.trim();
      error.hidden = true;
      button.disabled = true;
      try {
        var link = await post("/api/bookings/" + root.dataset.booking + "/invites", { label: label });
        $("room-invite-url").value = link.url;
        $("room-invite-who").textContent = label;
        $("room-invite-copied").textContent = "";
        $("room-invite-result").hidden = false;
        $("room-invite-label").value = "";
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    $("room-invite-copy").addEventListener("click", async function () {
      var field = $("room-invite-url"), copied = true;
      try {
        await navigator.clipboard.writeText(field.value);
      } catch (err) { // no clipboard API (plain http) or refused: the selection, the old way
        field.select();
        copied = document.execCommand("copy");
      }
      $("room-invite-copied").textContent = copied ? "Lien copié." : "Sélectionnez le lien et copiez-le.";
    });
  }

  $("room-join").addEventListener("click", async function (event) {
    event.target.disabled = true;
    try {
      if (!stream) await acquire();
      if (mode === "guest") ticket = window.telmiGuestTicket; else await freshTicket();
      if (!ticket) throw new Error("Invitation introuvable.");
      setStatus("Connexion…", "connecting");
      open();
    } catch (err) {
      var why = err instanceof DOMException ? deviceProblem(err) : err.message;
      setStatus("Impossible de rejoindre la consultation.", "error");
      alarm("Impossible de rejoindre : " + why);
      event.target.disabled = false;
    }
  });

  acquire().catch(function (err) {
    setStatus("Caméra ou micro inaccessible.", "error");
    alarm(deviceProblem(err));
  });

  window.telmiRoom = {
    peers: peers,
    state: function () { return root.dataset.state; },
    socket: function () { return ws; },
    tracks: function () { return stream ? stream.getTracks() : []; },
    audioOnly: function () { return audioOnly; },
    capFor: capFor,
    applyCaps: applyCaps,
    quality: quality,
    weigh: weigh
  };
})();
