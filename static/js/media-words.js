// What the room and the pre-call test say when the browser refuses a camera or a
// microphone: in words, never the exception's name. Loaded before room.js and precall.js.
window.telmiMediaWords = {
  deviceProblem: function (err) {
    var why = {
      NotAllowedError: "l'accès a été refusé : autorisez la caméra et le micro dans le navigateur",
      NotFoundError: "aucune caméra ou aucun micro n'a été trouvé",
      NotReadableError: "la caméra ou le micro est utilisé par une autre application",
      OverconstrainedError: "l'appareil choisi n'est plus disponible : choisissez-en un autre"
    }[err && err.name];
    return "Caméra ou micro inaccessible : " + (why || "autorisez-les dans le navigateur, ou vérifiez qu'aucune autre application ne les utilise") + ".";
  }
};
