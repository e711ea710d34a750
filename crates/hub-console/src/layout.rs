//! The page shell (header, brand navigation, language switch, sign-out) and small pieces every
//! page uses: times in Istanbul, the CSRF field, badges.

use hub_core::{BrandCode, Mode};
use hub_store::Brand;
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};

use crate::error::encode;
use crate::i18n::{Lang, T};
use crate::session::Session;

/// A page without the signed-in header (sign-in, errors).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(title))
            body { (body) }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " — iyshub" }
            link rel="stylesheet" href=(crate::CSS_PATH);
            script src=(crate::HTMX_PATH) defer {}
        }
    }
}

/// Which brand page is open, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Dashboard,
    Recipients,
    Keys,
    Webhooks,
    Segments,
    Imports,
    Audit,
    Settings,
}

/// A signed-in page; with `brand`, its navigation.
pub fn page(
    s: &Session,
    path: &str,
    title: &str,
    brand: Option<(&Brand, Tab)>,
    body: Markup,
) -> Markup {
    let lang = s.lang;
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(title))
            body {
                header.top {
                    a.logo href="/brands" { "iyshub" }
                    nav aria-label=(lang.t(T::Brands)) {
                        a href="/brands" { (lang.t(T::Brands)) }
                        @if s.user.global_admin {
                            a href="/users" { (lang.t(T::Users)) }
                            a href="/audit" { (lang.t(T::Audit)) }
                        }
                    }
                    span.spacer {}
                    (lang_switch(lang, path))
                    span.user { (s.user.username) }
                    form.inline method="post" action="/logout" {
                        (csrf(s))
                        button.link type="submit" { (lang.t(T::SignOut)) }
                    }
                }
                @if let Some((b, tab)) = brand { (brand_nav(lang, b, tab)) }
                main { (body) }
            }
        }
    }
}

fn brand_nav(lang: Lang, b: &Brand, tab: Tab) -> Markup {
    let base = format!("/brands/{}", b.brand_code);
    let tabs = [
        (Tab::Dashboard, T::Dashboard, base.clone()),
        (Tab::Recipients, T::Recipients, format!("{base}/recipients")),
        (Tab::Segments, T::Segments, format!("{base}/segments")),
        (Tab::Imports, T::Imports, format!("{base}/imports")),
        (Tab::Webhooks, T::Webhooks, format!("{base}/webhooks")),
        (Tab::Keys, T::ApiKeys, format!("{base}/keys")),
        (Tab::Audit, T::Audit, format!("{base}/audit")),
        (Tab::Settings, T::Settings, format!("{base}/settings")),
    ];
    html! {
        nav.brand aria-label=(lang.t(T::Brand)) {
            strong { (b.name) " · " (b.brand_code) }
            (mode_badge(lang, b.mode))
            @for (t, label, href) in tabs {
                @if t == tab { a href=(href) aria-current="page" { (lang.t(label)) } }
                @else { a href=(href) { (lang.t(label)) } }
            }
        }
    }
}

pub fn mode_badge(lang: Lang, mode: Mode) -> Markup {
    match mode {
        Mode::Sync => html! { span.badge.sync title=(lang.t(T::ModeSync)) { "sync" } },
        Mode::Integrator => {
            html! { span.badge.integrator title=(lang.t(T::ModeIntegrator)) { "integrator" } }
        }
    }
}

/// The other language's link, back to `path`.
pub fn lang_switch(lang: Lang, path: &str) -> Markup {
    let other = match lang {
        Lang::Tr => Lang::En,
        Lang::En => Lang::Tr,
    };
    html! {
        a.lang href=(format!("/lang/{}?next={}", other.code(), encode(path))) lang=(other.code()) hreflang=(other.code()) {
            (lang.t(T::Language))
        }
    }
}

/// The hidden field every form of a session carries.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A time as people in Turkey read it: Istanbul, to the second.
pub fn when(t: Timestamp) -> String {
    iys::consent_date::ISTANBUL
        .to_datetime(t)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn when_opt(lang: Lang, t: Option<Timestamp>) -> String {
    t.map_or_else(|| lang.t(T::Never).to_owned(), when)
}

pub fn yes_no(lang: Lang, v: bool) -> &'static str {
    lang.t(if v { T::Yes } else { T::No })
}

/// The brand's base path.
pub fn brand_path(b: BrandCode) -> String {
    format!("/brands/{b}")
}

/// A duration in seconds as people read it: "42 s", "7 min", "3 h", "2 d".
pub fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

pub const CSS: &str = r#"
:root{--fg:#1d2330;--muted:#5b6475;--bg:#f6f7f9;--card:#fff;--line:#d9dde4;--accent:#0b5cad;--ok:#11693a;--warn:#8a5200;--bad:#a01c1c}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f0b400;outline-offset:1px}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:.75rem 1rem;padding:.6rem 1rem;background:#14213d;color:#fff}
header.top a{color:#fff}
header.top .logo{font-weight:700;text-decoration:none;font-size:1.15rem}
header.top nav{display:flex;gap:1rem}
.spacer{flex:1}
.user{opacity:.9}
nav.brand{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1rem;padding:.5rem 1rem;background:#fff;border-bottom:1px solid var(--line)}
nav.brand a[aria-current]{font-weight:700;text-decoration:none;border-bottom:3px solid var(--accent)}
main{padding:1rem;max-width:72rem;margin:0 auto}
main.narrow{max-width:26rem;margin:3rem auto;background:var(--card);padding:1.5rem;border:1px solid var(--line);border-radius:6px}
h1{font-size:1.5rem;margin:.2rem 0 1rem}
h2{font-size:1.15rem;margin:1.2rem 0 .5rem}
section.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.8rem 1rem;margin:0 0 1rem}
.grid{display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr))}
table{border-collapse:collapse;width:100%;background:var(--card)}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.9rem}
.scroll{overflow-x:auto}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}
input,select{font:inherit;padding:.45rem .5rem;border:1px solid #8a93a3;border-radius:4px;width:100%;max-width:28rem;background:#fff}
input[type=checkbox]{width:auto}
button{font:inherit;padding:.45rem .9rem;border:0;border-radius:4px;background:var(--accent);color:#fff;cursor:pointer;margin-top:.6rem}
button.danger{background:var(--bad)}
button.link{background:none;color:inherit;text-decoration:underline;padding:0;margin:0}
form.inline{display:inline}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.85rem;font-weight:600;background:#e6e9ef}
.badge.sync{background:#dbeafe;color:#0b3d91}.badge.integrator{background:#ede9fe;color:#4c1d95}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.error{color:var(--bad);font-weight:600}
.notice{background:#fff7e0;border:1px solid #e8c66a;padding:.6rem .8rem;border-radius:4px}
code.key{display:block;word-break:break-all;background:#10182b;color:#e6edf7;padding:.6rem;border-radius:4px;font-size:1rem}
.muted{color:var(--muted)}
code,.timeline{overflow-wrap:anywhere}
.timeline li{margin:.2rem 0 .8rem}
svg text{font-size:11px;fill:var(--muted)}
@media (max-width:40rem){main{padding:.6rem}th,td{padding:.3rem}}
"#;
