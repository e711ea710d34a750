//! The web console in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver`), against `iyshub serve` with its embedded defaults: SQLite and the built-in
//! IYS simulator.
//!
//! Signs in with the first admin's printed password in English and in Turkish, switches the demo
//! brand's mode and sees the held count change, looks up a recipient and sees a citizen's RET
//! made in the simulator in the timeline, sets and lifts a hold, creates and revokes an API key,
//! sends a forged form without the CSRF token (refused), signs out, and opens another brand's
//! pages as a brand-limited user (not found). Screenshots of the main pages go to
//! `IYSHUB_SCREENSHOTS_DIR` (the committed ones in `docs/screenshots/` come from there), else to
//! a temporary directory.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::serve_ready;
use common::webdriver::{Browser, Driver, available};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "ihk_console_e2e_admin_key_0123456789abcdef";
const BRAND: &str = "600123";

fn printed(log: &str, after: &str) -> String {
    log.lines()
        .find_map(|l| l.split_once(after).map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{after:?} not printed:\n{log}"))
        .trim_end_matches(',')
        .to_owned()
}

async fn api(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn sign_in(b: &Browser, base: &str, user: &str, password: &str) {
    b.goto(&format!("{base}/login")).await;
    b.type_into("#username", user).await;
    b.type_into("#password", password).await;
    b.click("button[type=submit]").await;
    b.find("header.top").await;
}

async fn sign_out(b: &Browser) {
    b.click("header.top form button").await;
    b.find("#username").await;
}

async fn shot(b: &Browser, dir: &Path, name: &str) {
    b.screenshot(&dir.join(format!("{name}.png"))).await;
}

/// The held row of the dashboard's outbox table (0 when there is none).
async fn held(b: &Browser) -> i64 {
    match b.all("td[data-state=held]").await.first() {
        Some(e) => b.text(e).await.trim().parse().unwrap_or(-1),
        None => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    if !available("the console's browser test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shots: PathBuf = std::env::var_os("IYSHUB_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let http = reqwest::Client::new();
    let (hub, sim) = serve_ready(
        dir.path(),
        &[("IYSHUB_ADMIN_KEY", ADMIN_KEY), ("IYSHUB_RATE_LIMIT", "0")],
        &http,
    )
    .await;
    let base = hub.base.clone();
    let log = std::fs::read_to_string(&hub.log).unwrap();
    let password = printed(&log, "user admin, password ");

    let driver = Driver::start().await;
    let b = driver.browser("en-US").await;

    // Sign in (English, from the browser's language); a wrong password first.
    b.goto(&format!("{base}/brands")).await;
    b.find("#username").await;
    assert!(b.url().await.ends_with("/login?next=%2Fbrands"));
    shot(&b, &shots, "login").await;
    b.type_into("#username", "admin").await;
    b.type_into("#password", "not the password").await;
    b.click("button[type=submit]").await;
    assert!(
        b.text_of("p.error")
            .await
            .contains("Wrong user name or password")
    );
    sign_in(&b, &base, "admin", &password).await;
    assert!(b.url().await.ends_with("/brands"));
    assert!(b.text_of("main h1").await.contains("Brands"));
    shot(&b, &shots, "brands").await;

    // The mode switch: to sync, then an ONAY for a recipient IYS does not know is held.
    let dashboard = format!("{base}/brands/{BRAND}");
    b.goto(&dashboard).await;
    b.click("#switch-mode").await;
    assert!(b.url().await.contains("/mode?to=sync"));
    b.click("#confirm").await;
    b.find("span.badge.sync").await;
    let (status, _) = api(&http, &base, reqwest::Method::POST, &format!("/api/v1/brands/{BRAND}/consents"),
        Some(json!({"recipient": "+905551112233", "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "consentDate": "2026-11-28 10:00:00"}))).await;
    assert_eq!(status, 200);
    b.goto(&dashboard).await;
    assert_eq!(held(&b).await, 1);
    shot(&b, &shots, "dashboard").await;
    // Back to integrator: the confirmation counts the held change, and the switch releases it.
    b.click("#switch-mode").await;
    assert_eq!(b.text_of("#release-count").await, "1");
    shot(&b, &shots, "mode-switch").await;
    b.click("#confirm").await;
    b.find("span.badge.integrator").await;
    assert_eq!(held(&b).await, 0);

    // A consent sent to IYS, then the citizen's RET in IYS (the simulator), pulled by the hub.
    let recipient = "+905321234567";
    api(&http, &base, reqwest::Method::POST, &format!("/api/v1/brands/{BRAND}/consents"),
        Some(json!({"recipient": recipient, "type": "MESAJ", "status": "ONAY", "source": "HS_WEB", "consentDate": "2026-11-28 11:00:00"}))).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = api(
            &http,
            &base,
            reqwest::Method::GET,
            &format!("/api/v1/brands/{BRAND}/recipients/{recipient}"),
            None,
        )
        .await;
        if r["channels"][0]["iysState"] == json!("in_iys") {
            break;
        }
        assert!(Instant::now() < deadline, "the ONAY did not reach IYS: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let citizen = http
        .post(format!("http://{sim}/_sim/citizen"))
        .json(&json!({"brandCode": 600123, "recipient": recipient, "type": "MESAJ", "status": "RET", "source": "IYS_MOBIL"}))
        .send()
        .await
        .unwrap();
    assert!(citizen.status().is_success(), "{:?}", citizen.text().await);
    let lookup = format!("{base}/brands/{BRAND}/recipients?q=0532%20123%2045%2067");
    let page = b
        .wait_for(&lookup, 40, |p| p.contains("data-origin=\"iys_pull\""))
        .await;
    assert!(page.contains("IYS_MOBIL"), "the citizen's source is shown");
    assert_eq!(
        b.text_of("tr[data-channel=MESAJ] td:nth-child(2)").await,
        "RET"
    );

    // Set and lift a hold.
    b.click("button.set").await;
    b.find("button.lift").await;
    assert_eq!(b.text_of("td.hold").await, "yes");
    shot(&b, &shots, "recipient").await;
    b.click("button.lift").await;
    b.find("button.set").await;
    assert_eq!(b.text_of("td.hold").await, "no");

    // An API key: created and shown once, usable, then revoked.
    b.goto(&format!("{base}/brands/{BRAND}/keys")).await;
    b.type_into("#key-name", "crm-prod").await;
    b.click("#create-key button[type=submit]").await;
    let key = b.text_of("#new-key code.key").await;
    assert!(key.starts_with("ihk_"), "{key}");
    let with_key = |k: String| {
        let (http, url) = (http.clone(), format!("{base}/api/v1/brands/{BRAND}"));
        async move {
            http.get(url)
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(with_key(key.clone()).await, 200);
    shot(&b, &shots, "keys").await;
    b.click("tr[data-name=crm-prod] button.revoke").await;
    b.find("tr[data-name=crm-prod] td.state span.bad").await;
    assert_eq!(with_key(key).await, 401);

    // A forged form: same origin, the session's cookie, no CSRF token.
    let forged = b
        .run_async(&format!(
            "const done = arguments[arguments.length - 1];
             fetch('/brands/{BRAND}/mode', {{method: 'POST', headers: {{'content-type': 'application/x-www-form-urlencoded'}}, body: 'to=sync'}})
               .then(r => done(r.status), e => done(String(e)));"
        ))
        .await;
    assert_eq!(forged, json!(403));
    b.goto(&dashboard).await;
    b.find("span.badge.integrator").await;

    // On a phone: the dashboard and the recipient page fit the width (no sideways scrolling of
    // the page; wide tables scroll inside their own box).
    b.resize(390, 844).await;
    for page in [dashboard.clone(), lookup.clone()] {
        b.goto(&page).await;
        let fits = b
            .run("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        assert_eq!(fits, json!(true), "{page} is wider than a phone");
    }
    b.goto(&dashboard).await;
    shot(&b, &shots, "dashboard-phone").await;
    b.resize(1280, 900).await;

    b.goto(&format!("{base}/brands/{BRAND}/audit")).await;
    let audit = b.source().await;
    for action in [
        "mode_switch",
        "hold_set",
        "hold_lifted",
        "api_key_created",
        "api_key_revoked",
    ] {
        assert!(
            audit.contains(&format!("data-action=\"{action}\"")),
            "{action} not in the audit log"
        );
    }
    shot(&b, &shots, "audit").await;
    sign_out(&b).await;
    b.goto(&dashboard).await;
    b.find("#username").await;

    // Turkish: chosen on the sign-in page, kept for the session.
    b.click("a.lang").await;
    assert_eq!(b.text_of("button[type=submit]").await, "Giriş yap");
    sign_in(&b, &base, "admin", &password).await;
    assert_eq!(b.text_of("main h1").await, "Markalar");
    b.goto(&dashboard).await;
    assert!(b.source().await.contains("Senkron durumu"));
    shot(&b, &shots, "dashboard-tr").await;
    sign_out(&b).await;
    b.quit().await;

    // A brand-limited user, created with the CLI, sees only their brand.
    let (status, _) = api(
        &http,
        &base,
        reqwest::Method::POST,
        "/api/v1/brands",
        Some(json!({"brandCode": 700456, "name": "Deneme Mağazası", "mode": "sync"})),
    )
    .await;
    assert_eq!(status, 201);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iyshub"))
        .current_dir(dir.path())
        .args([
            "admin",
            "create",
            "--username",
            "okur",
            "--brand",
            "700456:read",
        ])
        .env("IYSHUB_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let okur_password = printed(&stdout, "password ");
    let tr = driver.browser("tr-TR").await;
    sign_in(&tr, &base, "okur", &okur_password).await;
    let list = tr.source().await;
    assert!(
        list.contains("Deneme Mağazası") && !list.contains("Örnek Marka"),
        "{list}"
    );
    for path in ["", "/recipients", "/keys", "/audit"] {
        tr.goto(&format!("{dashboard}{path}")).await;
        assert!(
            tr.source().await.contains("Bulunamadı"),
            "{path} of another brand"
        );
    }
    tr.quit().await;
    drop(driver);
    hub.kill();
}
