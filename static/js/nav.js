// The main menu folds into « Menu » on narrow screens (telmi.css decides when, with the
// `folding` class). Without this script the button stays hidden and the menu stays visible.
(function () {
  "use strict";

  function setUp() {
    var toggle = document.querySelector(".topbar .menu-toggle");
    var menu = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
    if (!menu) return;
    var topbar = toggle.closest(".topbar");

    function setOpen(open) {
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      menu.classList.toggle("open", open);
    }

    toggle.hidden = false;
    topbar.classList.add("folding");
    setOpen(false);
    toggle.addEventListener("click", function () {
      setOpen(toggle.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || toggle.getAttribute("aria-expanded") !== "true") return;
      var inside = menu.contains(document.activeElement);
      setOpen(false);
      if (inside || document.activeElement === toggle) toggle.focus();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
