// The consultation room: preview and device choice, then a mesh call over Telmi's signaling
// (protocol v1, see ARCHITECTURE.md). Perfect negotiation per pair: the newcomer offers first
// and is the polite side; ICE failures call restartIce(); a dropped socket reconnects with the
// resume token and the page says so. The join token is fetched just before joining and only
// ever sent in the first WebSocket frame. When the call ends for this page (ended by the
// specialist, left, or refused at the lobby) the camera and microphone are released, the call
// controls go and a link leads back (its target comes from the page, not from this file).
// Members can invite a guest: a single-use link, shown once, to copy.
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
  var stream = null, ws = null, me = null, ticket = null, ended = false, finished = false, retries = 0;
  var iceServers = [];
  var peers = new Map();
  window.telmiRoom = {
    peers: peers,
    state: function () { return root.dataset.state; },
    socket: function () { return ws; },
    tracks: function () { return stream ? stream.getTracks() : []; }
  };

  function setStatus(text, state) {
    status.textContent = text;
    root.dataset.state = state;
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
    var camera = $("room-camera").value, micro = $("room-micro").value;
    var next = await navigator.mediaDevices.getUserMedia({
      video: camera ? { deviceId: { exact: camera } } : true,
      audio: micro ? { deviceId: { exact: micro } } : true
    });
    if (stream) {
      peers.forEach(function (peer) {
        peer.pc.getSenders().forEach(function (sender) {
          var track = sender.track && next.getTracks().find(function (t) { return t.kind === sender.track.kind; });
          if (track) sender.replaceTrack(track);
        });
      });
      stream.getTracks().forEach(function (t) { t.stop(); });
    }
    if (finished) { next.getTracks().forEach(function (t) { t.stop(); }); return; }
    stream = next;
    preview.srcObject = stream;
    var devices = await navigator.mediaDevices.enumerateDevices();
    fill($("room-camera"), devices, "videoinput");
    fill($("room-micro"), devices, "audioinput");
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
    var caption = document.createElement("figcaption");
    figure.appendChild(video); figure.appendChild(caption);
    stage.appendChild(figure);
    return { figure: figure, video: video, caption: caption };
  }

  function addPeer(info) {
    if (peers.has(info.participant_id)) return peers.get(info.participant_id);
    var pc = new RTCPeerConnection({ iceServers: iceServers });
    var peer = {
      info: info, pc: pc, view: tile(info),
      polite: me.seq > info.seq, canOffer: me.seq > info.seq,
      makingOffer: false, ignoreOffer: false
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
    pc.onconnectionstatechange = render;
    stream.getTracks().forEach(function (t) { pc.addTrack(t, stream); });
    render();
    return peer;
  }

  function removePeer(id) {
    var peer = peers.get(id);
    if (!peer) return;
    peer.pc.close();
    peer.view.figure.remove();
    peers.delete(id);
    render();
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

  function render() {
    list.innerHTML = "";
    var mine = document.createElement("li");
    mine.textContent = "Vous (" + root.dataset.name + ")";
    list.appendChild(mine);
    peers.forEach(function (peer) {
      var media = peer.info.state === "reconnecting" ? "reconnecting" : peer.pc.connectionState;
      var li = document.createElement("li");
      li.dataset.state = media;
      var muted = peer.info.media && peer.info.media.audio === false ? " · micro coupé" : "";
      li.textContent = peer.info.name + " — " + (STATES[media] || media) + muted;
      list.appendChild(li);
      peer.view.caption.textContent = peer.info.name + muted;
    });
  }

  // --- the lobby ---------------------------------------------------------------------------------

  function knock(info) {
    var li = document.createElement("li");
    li.id = "knock-" + info.participant_id;
    li.textContent = info.name + " attend ";
    ["Admettre", "Refuser"].forEach(function (label, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.className = i ? "secondary" : "";
      button.addEventListener("click", function () {
        send({ type: i ? "deny" : "admit", participant_id: info.participant_id });
        li.remove();
      });
      li.appendChild(button);
    });
    lobby.appendChild(li);
    $("room-lobby-box").hidden = false;
    beep();
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
      setStatus("Connexion perdue : reconnexion…", "reconnecting");
      var wait = Math.min(8000, 500 * Math.pow(2, retries++));
      setTimeout(async function () {
        try { if (!me) await freshTicket(); } catch (err) { /* keep trying with resume */ }
        open();
      }, wait);
    };
  }

  async function handle(frame) {
    switch (frame.type) {
      case "joined":
        retries = 0;
        var returning = me && me.participant_id === frame.participant_id;
        me = frame;
        iceServers = frame.ice_servers || [];
        $("room-join-box").hidden = true;
        $("room-call").hidden = false;
        if (!$("room-self")) {
          var self = document.createElement("figure");
          self.id = "room-self";
          self.className = "tile self";
          var caption = document.createElement("figcaption");
          caption.textContent = "Vous";
          self.appendChild(preview);
          self.appendChild(caption);
          stage.prepend(self);
        }
        setStatus("En consultation", "connected");
        if (!returning) frame.participants.forEach(addPeer);
        (frame.waiting || []).forEach(knock);
        render();
        break;
      case "waiting":
        setStatus("Salle d'attente : le spécialiste va vous admettre.", "waiting");
        break;
      case "knock": knock(frame); break;
      case "participant-joined": addPeer(frame); break;
      case "participant-left":
        removePeer(frame.participant_id);
        var knocked = $("knock-" + frame.participant_id);
        if (knocked) knocked.remove();
        break;
      case "participant-updated":
        var peer = peers.get(frame.participant_id);
        if (peer) { peer.info = frame; render(); }
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
          setStatus("Erreur : " + frame.message, root.dataset.state);
        }
        break;
    }
  }

  // --- the end -----------------------------------------------------------------------------------

  function finish(message) {
    ended = true;
    if (finished) return;
    finished = true;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    peers.forEach(function (p, id) { removePeer(id); });
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    preview.srcObject = null;
    ["room-join-box", "room-stage", "room-controls", "room-people", "room-lobby-box", "room-end", "room-invite"]
      .forEach(function (id) { var el = $(id); if (el) el.hidden = true; });
    setStatus(message, "ended");
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
    after.replaceChildren(next);
    after.hidden = false;
  }

  // --- controls ----------------------------------------------------------------------------------

  function toggle(kind, button, on, off) {
    var track = stream && stream.getTracks().find(function (t) { return t.kind === kind; });
    if (!track) return;
    track.enabled = !track.enabled;
    button.textContent = track.enabled ? off : on;
    button.setAttribute("aria-pressed", String(!track.enabled));
    var state = {}; state[kind] = track.enabled;
    send({ type: "update", state: state });
  }

  $("room-camera").addEventListener("change", acquire);
  $("room-micro").addEventListener("change", acquire);
  $("room-mute").addEventListener("click", function (e) { toggle("audio", e.target, "Réactiver le micro", "Couper le micro"); });
  $("room-video").addEventListener("click", function (e) { toggle("video", e.target, "Réactiver la caméra", "Couper la caméra"); });
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
        setStatus("Erreur : " + err.message, root.dataset.state);
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
      setStatus("Impossible de rejoindre : " + err.message, "error");
      event.target.disabled = false;
    }
  });

  acquire().catch(function (err) {
    setStatus("Caméra ou micro inaccessible (" + err.name + ") : autorisez-les dans le navigateur.", "error");
  });
})();
