//! The console over a real socket, as a browser without JavaScript uses it: sign-in, lockout,
//! CSRF and origin checks, brand isolation, both languages, holds, the mode switch, API keys.
//! On a fresh PostgreSQL database when `IYSHUB_TEST_DATABASE_URL` is set, else on SQLite.

use std::sync::Arc;

use hub::Hub;
use hub_core::{BrandCode, Channel, Mode};
use hub_store::prelude::*;
use hub_store::testkit::{change, create_brand, date, drop_postgres, fresh_postgres};
use hub_store::{ConsoleRole, SqlStore};
use iys::ConsentStatus;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_LANGUAGE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use tokio_util::sync::CancellationToken;

const OURS: BrandCode = BrandCode(600_123);
const THEIRS: BrandCode = BrandCode(700_456);
const PASSWORD: &str = "correct horse battery";

struct Console {
    base: String,
    hub: Arc<Hub>,
    cancel: CancellationToken,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Console {
    async fn start(prefix: &str) -> Console {
        let (url, dir, postgres) = match std::env::var("IYSHUB_TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let (url, name) = fresh_postgres(&admin, prefix).await;
                (url, None, Some((admin, name)))
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let url = SqlStore::sqlite_url(&dir.path().join("hub.db")).unwrap();
                (url, Some(dir), None)
            }
        };
        let store = SqlStore::connect(&url).await.unwrap();
        create_brand(&store, OURS, "Örnek Marka").await;
        create_brand(&store, THEIRS, "Başka Marka").await;
        let hub = Arc::new(Hub::new(store.into()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let cancel = CancellationToken::new();
        let app = hub::router_with(hub.clone(), hub_console::routes());
        tokio::spawn(hub::serve_router(app, listener, cancel.clone()));
        Console {
            base,
            hub,
            cancel,
            _dir: dir,
            postgres,
        }
    }

    async fn user(&self, name: &str, global: bool, grants: Vec<(BrandCode, ConsoleRole)>) {
        hub_console::users::create(&*self.hub.store, name, Some(PASSWORD), global, grants)
            .await
            .unwrap();
    }

    fn browser(&self) -> Browser {
        Browser {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            session: None,
            lang: "en-GB,en;q=0.9",
        }
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        self.hub.store.close().await;
        if let Some((admin, name)) = self.postgres.take() {
            drop_postgres(&admin, &name).await;
        }
    }
}

/// A browser without JavaScript: keeps the session cookie, reads pages as text.
struct Browser {
    base: String,
    http: reqwest::Client,
    session: Option<String>,
    lang: &'static str,
}

impl Browser {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(ACCEPT_LANGUAGE, self.lang);
        if let Some(s) = &self.session {
            r = r.header(COOKIE, format!("iyshub_session={s}"));
        }
        r
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Posts a form as our pages do: same origin.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let r = self
            .request(reqwest::Method::POST, path)
            .header(ORIGIN, &self.base)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.text().await.unwrap();
        (status, location.unwrap_or(body))
    }

    async fn login(&mut self, user: &str, password: &str) -> StatusCode {
        let r = self
            .request(reqwest::Method::POST, "/login")
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        if let Some(c) = r.headers().get(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let token = c
                .strip_prefix("iyshub_session=")
                .and_then(|v| v.split(';').next())
                .unwrap();
            self.session = Some(token.to_owned());
        }
        r.status()
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&self, path: &str) -> String {
        let (status, page) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        page[at..at + 64].to_owned()
    }
}

#[tokio::test]
async fn sign_in_lockout_and_sign_out() {
    let c = Console::start("console_login").await;
    c.user("ayse", true, vec![]).await;
    let mut b = c.browser();

    // Not signed in: every page sends to the sign-in page, and back afterwards.
    let r = b
        .request(reqwest::Method::GET, "/brands/600123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=%2Fbrands%2F600123");

    // A wrong password and an unknown user get the same answer.
    assert_eq!(
        b.login("ayse", "wrong password!").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(b.login("nobody", PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert!(b.session.is_none());

    assert_eq!(b.login("ayse", PASSWORD).await, StatusCode::SEE_OTHER);
    let (status, page) = b.get("/brands").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Örnek Marka") && page.contains("Başka Marka"),
        "{page}"
    );

    // Signing out ends the session on the server: the old cookie no longer works.
    let csrf = b.csrf("/brands").await;
    let (status, to) = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(b.get("/brands").await.0, StatusCode::SEE_OTHER);

    // Five failures in a row lock the account, even against the right password afterwards.
    for _ in 0..4 {
        assert_eq!(
            b.login("ayse", "wrong password!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        b.login("ayse", "wrong password!").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    b.session = None;
    assert_eq!(
        b.login("ayse", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(b.session.is_none());
    // An operator's reset lifts it.
    hub_console::users::reset_password(&*c.hub.store, "ayse", Some(PASSWORD))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.login("ayse", PASSWORD).await, StatusCode::SEE_OTHER);

    let log = c.hub.store.audit_log(None, None, 100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "console_login",
        "console_login_failed",
        "console_login_locked",
        "console_logout",
        "console_password_reset",
    ] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    c.stop().await;
}

#[tokio::test]
async fn forged_and_cross_site_forms_are_refused() {
    let c = Console::start("console_csrf").await;
    c.user("ayse", true, vec![]).await;
    let mut b = c.browser();
    b.login("ayse", PASSWORD).await;
    let csrf = b.csrf("/brands/600123/mode?to=sync").await;

    // No token, a wrong token, a token of another session: refused, nothing changes.
    let (status, _) = b.post("/brands/600123/mode", &[("to", "sync")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let wrong = "0".repeat(64);
    let (status, _) = b
        .post("/brands/600123/mode", &[("to", "sync"), ("csrf", &wrong)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut other = c.browser();
    other.login("ayse", PASSWORD).await;
    let theirs = other.csrf("/brands").await;
    assert_ne!(theirs, csrf);
    let (status, _) = b
        .post("/brands/600123/mode", &[("to", "sync"), ("csrf", &theirs)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The right token from another site's page: refused on its origin.
    let r = b
        .request(reqwest::Method::POST, "/brands/600123/mode")
        .header(ORIGIN, "https://evil.example")
        .form(&[("to", "sync"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        c.hub.store.brand(OURS).await.unwrap().unwrap().mode,
        Mode::Integrator
    );

    // With the token from our own page it goes through.
    let (status, to) = b
        .post("/brands/600123/mode", &[("to", "sync"), ("csrf", &csrf)])
        .await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "/brands/600123")
    );
    assert_eq!(
        c.hub.store.brand(OURS).await.unwrap().unwrap().mode,
        Mode::Sync
    );
    c.stop().await;
}

#[tokio::test]
async fn a_brand_user_sees_only_their_brand_and_only_what_their_role_allows() {
    let c = Console::start("console_roles").await;
    c.user("okur", false, vec![(OURS, ConsoleRole::Read)]).await;
    c.hub
        .store
        .apply(
            &c.hub.store.brand(OURS).await.unwrap().unwrap(),
            vec![change(
                OURS,
                "+905321234567",
                Channel::Iys(iys::ConsentType::Mesaj),
                ConsentStatus::Onay,
                date("2026-11-20 10:00:00"),
            )],
            None,
        )
        .await
        .unwrap();
    let mut b = c.browser();
    b.login("okur", PASSWORD).await;

    let (_, list) = b.get("/brands").await;
    assert!(
        list.contains("Örnek Marka") && !list.contains("Başka Marka"),
        "{list}"
    );
    for path in [
        "/brands/700456",
        "/brands/700456/recipients?q=%2B905321234567",
        "/brands/700456/audit",
        "/brands/700456/keys",
        "/brands/999999",
    ] {
        assert_eq!(b.get(path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(b.get("/audit").await.0, StatusCode::FORBIDDEN);
    // Reading is allowed; admin pages and writes are not.
    let (status, page) = b
        .get("/brands/600123/recipients?q=0532%20123%2045%2067")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("+905321234567") && !page.contains("recipients/hold"),
        "{page}"
    );
    assert_eq!(b.get("/brands/600123/keys").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        b.get("/brands/600123/mode?to=sync").await.0,
        StatusCode::FORBIDDEN
    );
    let csrf = b.csrf("/brands/600123").await;
    let (status, _) = b
        .post(
            "/brands/600123/recipients/hold",
            &[
                ("csrf", &csrf),
                ("recipient", "+905321234567"),
                ("channel", "MESAJ"),
                ("recipientType", "BIREYSEL"),
                ("hold", "true"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !c.hub.store.consents(OURS, "+905321234567").await.unwrap()[0]
            .state
            .hold
    );
    c.stop().await;
}

#[tokio::test]
async fn pages_in_both_languages_without_javascript() {
    let c = Console::start("console_lang").await;
    c.user("ayse", true, vec![]).await;
    let mut b = c.browser();
    b.lang = "tr-TR,tr;q=0.9";
    let (status, page) = b.get("/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<html lang=\"tr\"") && page.contains("Giriş yap"),
        "{page}"
    );
    b.login("ayse", PASSWORD).await;
    let (_, page) = b.get("/brands").await;
    assert!(
        page.contains("Markalar") && page.contains("bağlı değil"),
        "{page}"
    );
    // The dashboard is complete as served: figures, tally and chart are in the first answer.
    let (_, page) = b.get("/brands/600123").await;
    for part in [
        "Senkron durumu",
        "<table id=\"outbox\"",
        "<table id=\"tally\"",
        "<svg",
        "İYS ile günlük mutabakat",
    ] {
        assert!(page.contains(part), "{part} missing");
    }
    // The choice of language is kept in a cookie and wins over the browser's.
    let r = b
        .request(reqwest::Method::GET, "/lang/en?next=%2Fbrands")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/brands");
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("iyshub_lang=en;"), "{cookie}");
    let r = b
        .request(reqwest::Method::GET, "/brands")
        .header(
            COOKIE,
            format!(
                "iyshub_session={}; iyshub_lang=en",
                b.session.as_deref().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<html lang=\"en\"") && page.contains("Brands"),
        "{page}"
    );
    // Never to another site after a language switch or a sign-in.
    let r = b
        .request(reqwest::Method::GET, "/lang/tr?next=%2F%2Fevil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/");
    c.stop().await;
}

#[tokio::test]
async fn holds_mode_switch_and_keys_through_the_forms() {
    let c = Console::start("console_actions").await;
    c.user("ayse", false, vec![(OURS, ConsoleRole::Admin)])
        .await;
    let brand = c.hub.store.brand(OURS).await.unwrap().unwrap();
    let changes = (0..3)
        .map(|i| {
            change(
                OURS,
                &format!("+90532123456{i}"),
                Channel::Iys(iys::ConsentType::Mesaj),
                ConsentStatus::Onay,
                date("2026-11-20 10:00:00"),
            )
        })
        .collect();
    c.hub.store.apply(&brand, changes, None).await.unwrap();
    let mut b = c.browser();
    b.login("ayse", PASSWORD).await;

    // Set and lift a hold: the consent, the history and the audit log all show it.
    let csrf = b.csrf("/brands/600123/recipients?q=%2B905321234560").await;
    let hold = |on: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("recipient", "+905321234560".into()),
            ("channel", "MESAJ".into()),
            ("recipientType", "BIREYSEL".into()),
            ("hold", on.into()),
        ]
    };
    let form = hold("true");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, to) = b.post("/brands/600123/recipients/hold", &pairs).await;
    assert_eq!(
        (status, to.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/brands/600123/recipients?q=%2B905321234560"
        )
    );
    assert!(
        c.hub.store.consents(OURS, "+905321234560").await.unwrap()[0]
            .state
            .hold
    );
    let (_, page) = b.get("/brands/600123/recipients?q=%2B905321234560").await;
    assert!(
        page.contains("Lift hold") && page.contains("console:ayse"),
        "{page}"
    );
    let form = hold("false");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post("/brands/600123/recipients/hold", &pairs).await;
    assert!(
        !c.hub.store.consents(OURS, "+905321234560").await.unwrap()[0]
            .state
            .hold
    );

    // The switch to sync says how many waiting ONAYs it will hold, and holds that many.
    let (_, page) = b.get("/brands/600123/mode?to=sync").await;
    assert!(
        page.contains("<strong id=\"held-count\">3</strong>"),
        "{page}"
    );
    let csrf = b.csrf("/brands/600123").await;
    b.post("/brands/600123/mode", &[("csrf", &csrf), ("to", "sync")])
        .await;
    let held = c
        .hub
        .store
        .sync_figures(OURS, jiff::Timestamp::now())
        .await
        .unwrap()
        .outbox
        .into_iter()
        .find(|(s, _)| s == "held")
        .map_or(0, |(_, n)| n);
    assert_eq!(held, 3);
    let (_, page) = b.get("/brands/600123/mode?to=integrator").await;
    assert!(
        page.contains("<strong id=\"release-count\">3</strong>"),
        "{page}"
    );

    // A key is shown once at creation, works on the API, and stops working when revoked.
    let csrf = b.csrf("/brands/600123/keys").await;
    let (status, page) = b
        .post(
            "/brands/600123/keys",
            &[("csrf", &csrf), ("name", "crm"), ("read", "on")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let at = page.find("ihk_").expect("the new key on the page");
    let key = page[at..at + 68].to_owned();
    let api = reqwest::Client::new();
    let check = || {
        api.get(format!("{}/api/v1/brands/600123", c.base))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(check().await.unwrap().status(), StatusCode::OK);
    assert!(
        !b.get("/brands/600123/keys").await.1.contains(&key),
        "shown again"
    );
    let id = c
        .hub
        .store
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "crm")
        .unwrap()
        .id;
    // Another brand's admin cannot revoke it.
    c.user("mehmet", false, vec![(THEIRS, ConsoleRole::Admin)])
        .await;
    let mut m = c.browser();
    m.login("mehmet", PASSWORD).await;
    let mcsrf = m.csrf("/brands/700456/keys").await;
    let (status, _) = m
        .post(
            &format!("/brands/700456/keys/{id}/revoke"),
            &[("csrf", &mcsrf)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(check().await.unwrap().status(), StatusCode::OK);
    let (status, _) = b
        .post(
            &format!("/brands/600123/keys/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let log = c.hub.store.audit_log(Some(OURS), None, 100).await.unwrap();
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    for a in [
        "hold_set",
        "hold_lifted",
        "mode_switch",
        "api_key_created",
        "api_key_revoked",
    ] {
        assert!(
            actions.contains(&("console:ayse", a)),
            "{a} not in {actions:?}"
        );
    }
    c.stop().await;
}

#[tokio::test]
async fn iys_connection_settings_are_the_global_admins_and_secrets_stay_hidden() {
    let c = Console::start("console_settings").await;
    c.user("root", true, vec![]).await;
    c.user("ayse", false, vec![(OURS, ConsoleRole::Admin)])
        .await;
    let mut root = c.browser();
    root.login("root", PASSWORD).await;
    let csrf = root.csrf("/brands/600123/settings").await;
    // Hub::new allows IYS's own hosts; no secret key, so a password cannot be stored.
    let (status, page) = root
        .post(
            "/brands/600123/settings",
            &[
                ("csrf", &csrf),
                ("name", "Örnek Marka A.Ş."),
                ("iysCode", "600123"),
                ("baseUrl", "https://api.sandbox.iys.org.tr"),
                ("username", "ornek-api"),
                ("pushUsername", "iyspush"),
                ("pushPassword", "push-secret-123"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let b = c.hub.store.brand(OURS).await.unwrap().unwrap();
    assert_eq!(b.name, "Örnek Marka A.Ş.");
    assert_eq!(
        b.iys.base_url.as_deref(),
        Some("https://api.sandbox.iys.org.tr")
    );
    assert_eq!(b.iys.username.as_deref(), Some("ornek-api"));
    assert!(b.iys.push_password_hash.is_some());
    assert!(
        !page.contains("push-secret-123")
            && !page.contains(b.iys.push_password_hash.as_deref().unwrap())
    );
    // A host not on the allowed list is refused with the field named.
    let (status, page) = root
        .post(
            "/brands/600123/settings",
            &[
                ("csrf", &csrf),
                ("name", "Örnek Marka A.Ş."),
                ("iysCode", "600123"),
                ("baseUrl", "https://iys.evil.example"),
                ("username", "x"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("iys.baseUrl"), "{page}");
    // An empty password field keeps the stored one; the checkbox removes it.
    let keep = [
        ("csrf", csrf.as_str()),
        ("name", "Örnek Marka A.Ş."),
        ("iysCode", "600123"),
        ("baseUrl", "https://api.sandbox.iys.org.tr"),
        ("username", "ornek-api"),
        ("pushUsername", "iyspush"),
        ("pushPassword", ""),
    ];
    root.post("/brands/600123/settings", &keep).await;
    assert!(
        c.hub
            .store
            .brand(OURS)
            .await
            .unwrap()
            .unwrap()
            .iys
            .push_password_hash
            .is_some()
    );
    let mut clear = keep.to_vec();
    clear.push(("pushPasswordClear", "on"));
    root.post("/brands/600123/settings", &clear).await;
    assert!(
        c.hub
            .store
            .brand(OURS)
            .await
            .unwrap()
            .unwrap()
            .iys
            .push_password_hash
            .is_none()
    );

    // A brand's own admin may rename it but not touch the IYS connection.
    let mut ayse = c.browser();
    ayse.login("ayse", PASSWORD).await;
    let acsrf = ayse.csrf("/brands/600123/settings").await;
    let (status, _) = ayse
        .post(
            "/brands/600123/settings",
            &[
                ("csrf", &acsrf),
                ("name", "Örnek"),
                ("iysCode", "600123"),
                ("baseUrl", "https://api.iys.org.tr"),
                ("username", "mine"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ayse
        .post(
            "/brands/600123/settings",
            &[("csrf", &acsrf), ("name", "Örnek"), ("iysCode", "600123")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let b = c.hub.store.brand(OURS).await.unwrap().unwrap();
    assert_eq!(
        (b.name.as_str(), b.iys.username.as_deref()),
        ("Örnek", Some("ornek-api"))
    );
    let log = c.hub.store.audit_log(Some(OURS), None, 100).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.actor == "console:root" && e.action == "brand_updated")
    );
    assert!(
        log.iter()
            .any(|e| e.actor == "console:ayse" && e.action == "brand_updated")
    );
    c.stop().await;
}

/// The password shown once on the users page.
fn shown_password(page: &str) -> String {
    let at = page
        .find("<code class=\"key\">")
        .expect("a password on the page")
        + 18;
    page[at..].split('<').next().unwrap().to_owned()
}

#[tokio::test]
async fn global_admins_manage_users_in_the_browser() {
    let c = Console::start("console_users").await;
    c.user("root", true, vec![]).await;
    c.user("ayse", false, vec![(OURS, ConsoleRole::Admin)])
        .await;
    let mut root = c.browser();
    root.login("root", PASSWORD).await;
    let csrf = root.csrf("/users").await;
    let (status, page) = root
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("username", "mehmet"),
                ("brand", "700456"),
                ("role", "write"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    let password = shown_password(&page);
    assert_eq!(password.len(), 20);
    // Refused: a taken name, no brand and no global admin, an unknown brand.
    for (form, field) in [
        (
            vec![("username", "mehmet"), ("brand", "700456")],
            "already exists",
        ),
        (vec![("username", "x")], "brand:"),
        (vec![("username", "y"), ("brand", "123")], "brand: 123"),
    ] {
        let mut f = form.clone();
        f.push(("csrf", &csrf));
        let (status, page) = root.post("/users", &f).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains(field), "{field} in {page}");
    }
    let mut m = c.browser();
    assert_eq!(m.login("mehmet", &password).await, StatusCode::SEE_OTHER);
    let (_, list) = m.get("/brands").await;
    assert!(list.contains("Başka Marka") && !list.contains("Örnek Marka"));
    assert_eq!(m.get("/users").await.0, StatusCode::FORBIDDEN);

    // A new password ends the user's sessions.
    let id = c
        .hub
        .store
        .console_users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "mehmet")
        .unwrap()
        .id;
    let (status, page) = root
        .post(&format!("/users/{id}/password"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_password = shown_password(&page);
    assert_ne!(new_password, password);
    assert_eq!(m.get("/brands").await.0, StatusCode::SEE_OTHER);
    assert_eq!(m.login("mehmet", &password).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        m.login("mehmet", &new_password).await,
        StatusCode::SEE_OTHER
    );

    // A brand admin is not a global admin.
    let mut a = c.browser();
    a.login("ayse", PASSWORD).await;
    assert_eq!(a.get("/users").await.0, StatusCode::FORBIDDEN);
    let acsrf = a.csrf("/brands").await;
    let (status, _) = a
        .post(
            "/users",
            &[("csrf", &acsrf), ("username", "z"), ("globalAdmin", "on")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let log = c.hub.store.audit_log(None, None, 100).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.actor == "console:root" && e.action == "console_user_created")
    );
    assert!(
        log.iter()
            .any(|e| e.actor == "console:root" && e.action == "console_password_reset")
    );
    c.stop().await;
}

/// A multipart form as a browser sends it: `fields` in order, then the file.
fn multipart(fields: &[(&str, &str)], file_name: &str, file: &str) -> (String, Vec<u8>) {
    let boundary = "----iyshubTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n")
            .as_bytes(),
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn an_import_uploaded_previewed_remapped_started_and_its_rejects() {
    let c = Console::start("console_import").await;
    c.user("ayse", false, vec![(OURS, ConsoleRole::Write)])
        .await;
    tokio::spawn(hub::imports::work(
        c.hub.store.clone(),
        c.hub.imports_waiting.clone(),
        c.cancel.clone(),
    ));
    let mut b = c.browser();
    b.login("ayse", PASSWORD).await;
    let csrf = b.csrf("/brands/600123/imports").await;
    // "ILETISIM BILGISI" is not a column the importer knows: the preview says so, the person maps it.
    let file = "ILETISIM BILGISI;IZIN TURU;DURUM;IZIN KAYNAGI;IZIN TARIHI\r\n0532 123 45 60;MESAJ;ONAY;HS_WEB;2026-11-20 10:00:00\r\n0532 123 45 61;MESAJ;RET;HS_WEB;2026-11-20 10:00:00\r\nnot a phone;MESAJ;ONAY;HS_WEB;2026-11-20 10:00:00\r\n";
    let upload = |fields: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ct, body) = multipart(&pairs, "izinler.csv", file);
        b.request(reqwest::Method::POST, "/brands/600123/imports")
            .header(ORIGIN, &b.base)
            .header(reqwest::header::CONTENT_TYPE, ct)
            .body(body)
            .send()
    };
    // Without the token nothing is kept.
    let r = upload(vec![]).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        c.hub
            .store
            .imports(OURS, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let r = upload(vec![("csrf", csrf.clone())]).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let job = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let (status, page) = b.get(&job).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("recipient") && page.contains("ILETISIM BILGISI"),
        "{page}"
    );
    assert!(
        !page.contains("id=\"start\""),
        "no preview before the column is mapped: {page}"
    );
    // Mapped, the preview shows the rows and offers to start.
    let (_, page) = b
        .get(&format!("{job}?m.ILETISIM%20BILGISI=recipient"))
        .await;
    assert!(
        page.contains("id=\"start\"") && page.contains("0532 123 45 60"),
        "{page}"
    );
    let (status, to) = b
        .post(
            &format!("{job}/start"),
            &[("csrf", &csrf), ("m.ILETISIM BILGISI", "recipient")],
        )
        .await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, job.as_str()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done = loop {
        let j = c.hub.store.imports(OURS, None, 10).await.unwrap().remove(0);
        if j.state == hub_store::ImportState::Done {
            break j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "import not done: {j:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((done.counts.applied, done.counts.rejected), (2, 1));
    assert_eq!(done.actor.as_deref(), Some("console:ayse"));
    let r = b
        .request(reqwest::Method::GET, &format!("{job}/rejects.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rejects = r.text().await.unwrap();
    assert!(
        rejects.contains("not a phone") && rejects.lines().count() == 2,
        "{rejects}"
    );
    assert_eq!(
        c.hub.store.consents(OURS, "+905321234561").await.unwrap()[0]
            .state
            .status,
        ConsentStatus::Ret
    );
    // Started once only.
    let (status, _) = b
        .post(
            &format!("{job}/start"),
            &[("csrf", &csrf), ("m.ILETISIM BILGISI", "recipient")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    c.stop().await;
}

#[tokio::test]
async fn a_segment_built_counted_and_exported() {
    let c = Console::start("console_segments").await;
    c.user("ayse", false, vec![(OURS, ConsoleRole::Write)])
        .await;
    let brand = c.hub.store.brand(OURS).await.unwrap().unwrap();
    let sms = Channel::Iys(iys::ConsentType::Mesaj);
    let changes = vec![
        change(
            OURS,
            "+905321234560",
            sms,
            ConsentStatus::Onay,
            date("2026-11-20 10:00:00"),
        ),
        change(
            OURS,
            "+905321234561",
            sms,
            ConsentStatus::Onay,
            date("2026-11-20 10:00:00"),
        ),
        change(
            OURS,
            "+905321234562",
            sms,
            ConsentStatus::Ret,
            date("2026-11-20 10:00:00"),
        ),
    ];
    c.hub.store.apply(&brand, changes, None).await.unwrap();
    let mut b = c.browser();
    b.login("ayse", PASSWORD).await;
    let csrf = b.csrf("/brands/600123/segments").await;
    let build = |name: &'static str, policy: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", name.into()),
            ("channel", "MESAJ".into()),
            ("sendable", "on".into()),
            ("policy", policy.into()),
        ]
    };
    let post = |form: Vec<(&'static str, String)>| {
        let pairs: Vec<(String, String)> =
            form.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        b.request(reqwest::Method::POST, "/brands/600123/segments")
            .header(ORIGIN, &b.base)
            .form(&pairs)
            .send()
    };
    // Strict: ONAYs not yet in IYS may not be sent to.
    let r = post(build("sms-strict", "strict")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = b.get(r.headers()[LOCATION].to_str().unwrap()).await;
    assert!(
        page.contains("<strong class=\"count\">0</strong>"),
        "{page}"
    );
    let r = post(build("sms-lenient", "lenient")).await.unwrap();
    let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let (_, page) = b.get(&to).await;
    assert!(
        page.contains("<strong class=\"count\">2</strong>"),
        "{page}"
    );
    let id = to.rsplit('=').next().unwrap();
    let (status, csv) = b
        .get(&format!("/brands/600123/segments/{id}/members.csv"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        csv.contains("+905321234560")
            && csv.contains("+905321234561")
            && !csv.contains("+905321234562"),
        "{csv}"
    );
    // A bad value names its field; a taken name is refused.
    let mut bad = build("x", "strict");
    bad.push(("consentDateFrom", "yesterday".into()));
    let r = post(bad).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("consentDateFrom"));
    let r = post(build("sms-strict", "strict")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    c.stop().await;
}

#[tokio::test]
async fn conflicts_acknowledged_and_quarantined_movements_handled() {
    let c = Console::start("console_conflicts").await;
    c.user("ayse", false, vec![(OURS, ConsoleRole::Write)])
        .await;
    c.user("okur", false, vec![(OURS, ConsoleRole::Read)]).await;
    let brand = c.hub.store.brand(OURS).await.unwrap().unwrap();
    let sms = Channel::Iys(iys::ConsentType::Mesaj);
    // Equal consentDates, different statuses: RET wins and the consent is flagged.
    let d = date("2026-11-20 10:00:00");
    for status in [ConsentStatus::Onay, ConsentStatus::Ret] {
        c.hub
            .store
            .apply(
                &brand,
                vec![change(OURS, "+905321234567", sms, status, d)],
                None,
            )
            .await
            .unwrap();
    }
    let state = &c.hub.store.consents(OURS, "+905321234567").await.unwrap()[0].state;
    assert!(state.conflict && state.status == ConsentStatus::Ret);
    c.hub
        .store
        .quarantine(
            OURS,
            "changes",
            &[(
                serde_json::json!({"recipient": "??", "status": "RET"}),
                "the recipient \"??\" is not a valid address".into(),
            )],
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();

    // Readers see both, with no buttons; writers settle them.
    let mut okur = c.browser();
    okur.login("okur", PASSWORD).await;
    let (_, page) = okur
        .get("/brands/600123/recipients?q=%2B905321234567")
        .await;
    assert!(
        page.contains("<td class=\"conflict\"") && !page.contains("recipients/conflict"),
        "{page}"
    );
    let (_, page) = okur.get("/brands/600123").await;
    assert!(
        page.contains("is not a valid address") && !page.contains("/resolve"),
        "{page}"
    );

    let mut b = c.browser();
    b.login("ayse", PASSWORD).await;
    let csrf = b.csrf("/brands/600123").await;
    let (status, to) = b
        .post(
            "/brands/600123/recipients/conflict",
            &[
                ("csrf", &csrf),
                ("recipient", "+905321234567"),
                ("channel", "MESAJ"),
                ("recipientType", "BIREYSEL"),
            ],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/brands/600123/recipients?q=%2B905321234567"
        )
    );
    let state = &c.hub.store.consents(OURS, "+905321234567").await.unwrap()[0].state;
    assert!(
        !state.conflict && state.status == ConsentStatus::Ret,
        "the RET stays"
    );
    let id = c.hub.store.quarantined(OURS, 10).await.unwrap()[0].id;
    let (status, _) = b
        .post(
            &format!("/brands/600123/quarantine/{id}/resolve"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(c.hub.store.quarantined(OURS, 10).await.unwrap().is_empty());
    // Twice is not found: nothing left to settle.
    let (status, _) = b
        .post(
            &format!("/brands/600123/quarantine/{id}/resolve"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let log = c.hub.store.audit_log(Some(OURS), None, 100).await.unwrap();
    for a in ["conflict_acknowledged", "quarantine_resolved"] {
        assert!(
            log.iter()
                .any(|e| e.actor == "console:ayse" && e.action == a),
            "{a}"
        );
    }
    c.stop().await;
}

#[tokio::test]
async fn one_address_trying_many_names_is_stopped() {
    let c = Console::start("console_spray").await;
    c.user("ayse", true, vec![]).await;
    let mut b = c.browser();
    for i in 0..20 {
        assert_eq!(
            b.login(&format!("guess{i}"), "password-guess-1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    // The address is refused now, even with a real user's right password; the user's own
    // account is not locked (the failures were not hers).
    assert_eq!(
        b.login("ayse", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(b.session.is_none());
    let (user, _) = c
        .hub
        .store
        .console_login_user("ayse")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((user.failed_logins, user.locked_until), (0, None));
    c.stop().await;
}
