// A guest's invitation: the token is in the URL fragment (never sent to a server by the
// browser); it is spent once, for a join token, and removed from the address bar.
(function () {
  "use strict";
  var root = document.getElementById("room");
  var token = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);
  if (!root || !token) {
    if (root) document.getElementById("room-status").textContent = "Lien d'invitation incomplet.";
    return;
  }
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  fetch("/api/invites/redeem", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ token: token })
  }).then(async function (response) {
    var data = await response.json();
    if (!response.ok) throw new Error(data.error.message);
    window.telmiGuestTicket = data;
    root.dataset.name = data.name || "Invité";
    document.getElementById("room-join").disabled = false;
  }).catch(function (err) {
    document.getElementById("room-status").textContent = err.message;
  });
})();
