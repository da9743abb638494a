// A little plain JavaScript: confirm before signing, and move focus to results after screening.
document.addEventListener("DOMContentLoaded", function () {
  var results = document.getElementById("results");
  if (results) { results.setAttribute("tabindex", "-1"); results.focus(); }
  document.querySelectorAll("form.sign").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm("Sign electronically? Your signature is recorded with your name, the time and its meaning.")) {
        event.preventDefault();
      }
    });
  });
});
