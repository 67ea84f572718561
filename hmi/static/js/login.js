// Login page: POST /api/login (JSON), then go to the HMI. The session cookie is HttpOnly.
const form = document.getElementById("login-form");
const err = document.getElementById("login-error");
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  err.style.display = "none";
  const body = { user: form.user.value.trim(), password: form.password.value };
  let resp;
  try {
    resp = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) {
    err.textContent = "The HMI server cannot be reached.";
    err.style.display = "block";
    return;
  }
  if (resp.ok) {
    window.location.href = "/#/overview";
    return;
  }
  let detail = resp.statusText;
  try { detail = (await resp.json()).detail || detail; } catch (e) { /* not JSON */ }
  err.textContent = detail;
  err.style.display = "block";
  form.password.value = "";
});
