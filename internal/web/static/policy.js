// Checks the password against the policy as the person types, and stops a
// submission the server would refuse. The server checks again: this script
// only saves a round trip, and the form works without it.
(function () {
  "use strict";
  var form = document.querySelector("form[data-policy]");
  if (!form) return;
  var pw = form.querySelector("#password");
  var confirm = form.querySelector("#confirm");
  var match = document.getElementById("match");
  var list = document.getElementById("rules");
  var problems = document.getElementById("problems");
  var min = parseInt(list.getAttribute("data-min-length"), 10) || 0;
  // The same classes as the server: Unicode letters and digits; anything
  // else is special.
  var tests = {
    length: function (v) { return Array.from(v).length >= min; },
    lower: function (v) { return /\p{Ll}/u.test(v); },
    upper: function (v) { return /\p{Lu}/u.test(v); },
    digit: function (v) { return /\p{Nd}/u.test(v); },
    special: function (v) { return /[^\p{L}\p{Nd}]/u.test(v); }
  };
  var rules = Array.prototype.slice.call(list.querySelectorAll("li[data-rule]"));

  function unmet() {
    var v = pw.value;
    return rules.filter(function (li) {
      var test = tests[li.getAttribute("data-rule")];
      return test && !test(v);
    });
  }

  function update() {
    var missing = unmet();
    rules.forEach(function (li) {
      var ok = missing.indexOf(li) < 0 && pw.value !== "";
      li.classList.toggle("met", ok);
      li.querySelector(".state").textContent = ok ? " (done)" : " (not yet)";
    });
    if (confirm.value === "") {
      match.textContent = "";
      match.className = "hint";
    } else if (confirm.value === pw.value) {
      match.textContent = "The passwords match.";
      match.className = "hint ok";
    } else {
      match.textContent = "The passwords do not match yet.";
      match.className = "hint bad";
    }
  }

  function report(missing, mismatch) {
    while (problems.firstChild) problems.removeChild(problems.firstChild);
    if (missing.length) {
      var p = document.createElement("p");
      p.textContent = "Your password does not meet these rules yet:";
      problems.appendChild(p);
      var ul = document.createElement("ul");
      missing.forEach(function (li) {
        var item = document.createElement("li");
        item.textContent = li.textContent.replace(/ \((done|not yet)\)$/, "");
        ul.appendChild(item);
      });
      problems.appendChild(ul);
    }
    if (mismatch) {
      var m = document.createElement("p");
      m.textContent = "The two passwords do not match.";
      problems.appendChild(m);
    }
    problems.hidden = false;
    problems.focus();
  }

  var toggle = form.querySelector(".toggle");
  var show = document.getElementById("show");
  toggle.hidden = false;
  show.addEventListener("change", function () {
    var type = show.checked ? "text" : "password";
    pw.type = type;
    confirm.type = type;
  });

  pw.addEventListener("input", update);
  confirm.addEventListener("input", update);
  form.addEventListener("submit", function (e) {
    var missing = unmet();
    var mismatch = pw.value !== confirm.value;
    if (missing.length || mismatch) {
      e.preventDefault();
      report(missing, mismatch);
    }
  });
  update();
})();
