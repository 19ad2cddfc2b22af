// A guest's invitation: the token is in the URL fragment (never sent to a server by the
// browser); it is spent once, for a join token, and removed from the address bar. A problem
// goes to the room's alert, so a screen reader says it at once.
(function () {
  "use strict";
  var root = document.getElementById("room");
  var token = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);

  function problem(text) {
    var box = document.getElementById("room-alert") || document.getElementById("room-status");
    box.textContent = text;
    box.classList.add("alert");
  }

  if (!root || !token) {
    if (root) problem("Lien d'invitation incomplet : ouvrez le lien complet reçu, ou demandez-en un nouveau.");
    return;
  }
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  fetch("/api/invites/redeem", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ token: token })
  }).then(async function (response) {
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error((data.error && data.error.message) || "Cette invitation n'est plus valable : demandez un nouveau lien.");
    window.telmiGuestTicket = data;
    root.dataset.name = data.name || "Invité";
    document.getElementById("room-join").disabled = false;
  }).catch(function (err) {
    problem(err instanceof TypeError ? "Le serveur ne répond pas : vérifiez la connexion, puis rechargez la page." : err.message);
  });
})();
