// An invitation or reset link: its token is in the URL fragment (browsers never send it), so
// it is read here, removed from the address bar and history, then posted to open the page.
(function () {
  "use strict";
  var form = document.getElementById("link-open");
  if (!form) return;
  var token = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);
  if (!token) {
    document.getElementById("link-status").textContent = "Lien incomplet : ouvrez le lien reçu par e-mail en entier.";
    return;
  }
  document.getElementById("link-token").value = token;
  form.submit();
})();
