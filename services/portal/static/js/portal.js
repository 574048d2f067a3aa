// Small progressive enhancements for the portal (the pages work without JavaScript).
(function () {
  "use strict";

  // <form data-confirm="..."> asks before submitting (e.g. revoking an invitation).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    }
  });

  // Colour pickers show their hex value next to them.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (input instanceof HTMLInputElement && input.type === "color") {
      var code = input.parentElement && input.parentElement.querySelector("code");
      if (code) {
        code.textContent = input.value;
      }
    }
  });

  // Keep focus in the search box when htmx swaps the results below it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var results = event.detail && event.detail.target;
    if (results && results.id === "results") {
      results.setAttribute("aria-busy", "false");
    }
  });
})();
