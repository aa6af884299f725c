// Renders /api/v1/openapi.json with the vendored Swagger UI; the spec URL comes from a data attribute (CSP: no
// inline script).
(function () {
  var root = document.getElementById("api-reference");
  if (!root || !window.SwaggerUIBundle) {
    return;
  }
  window.SwaggerUIBundle({ url: root.dataset.specUrl, domNode: root, deepLinking: true, tryItOutEnabled: false });
})();
