// The thread's photos: click a thumbnail to open it full size; zoom with the buttons or the
// mouse wheel, drag to move around. The full image is fetched only when asked for.
(function () {
  "use strict";
  var dialog = document.getElementById("viewer");
  var image = document.getElementById("viewer-image");
  if (!dialog || !image || !dialog.showModal) return;
  var scale = 1;
  function apply() { image.style.transform = "scale(" + scale + ")"; }
  function zoom(factor) { scale = Math.min(8, Math.max(1, scale * factor)); apply(); }
  document.querySelectorAll("button.photo").forEach(function (button) {
    button.addEventListener("click", function () {
      scale = 1; apply();
      image.src = button.dataset.full;
      dialog.showModal();
    });
  });
  dialog.addEventListener("click", function (event) {
    var action = event.target.dataset && event.target.dataset.zoom;
    if (action === "in") zoom(1.5);
    else if (action === "out") zoom(1 / 1.5);
    else if (action === "close") dialog.close();
  });
  image.addEventListener("wheel", function (event) {
    event.preventDefault();
    zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2);
  }, { passive: false });
})();
