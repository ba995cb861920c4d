//! The page frame every screen shares: document head, header with the steps of the flow,
//! footer with the version, and the routes: the app's screens (hydrated by the WASM) and the
//! screens the server renders whole, which load no script: the people screens (sign-in,
//! setup, invitations, account, team, teams) and the records (History, Audit trail).
//!
//! Why two: those screens are plain HTML forms posted to server routes, GET filters and
//! links, so they need no script, and kept in the hydrated app they cost the browser bundle
//! their views, resources and data types: 40 KB gzipped for the people screens, 14 KB for the
//! Audit trail (docs/benchmarks.md). Links to them from the app carry `rel="external"`, so the
//! app's router loads them from the server instead of looking for them among its own screens.

use crate::pages;
use crate::Named;
use leptos::prelude::*;
#[cfg(feature = "ssr")]
use leptos_router::SsrMode;
use leptos_router::{
    components::{Route, Router, Routes, A},
    StaticSegment,
};

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let scripts = view! { <HydrationScripts options=options.clone() /> };
    document(&options, scripts, App)
}

/// The HTML document of a screen the server renders whole: the same head without the app's
/// script.
#[cfg(feature = "ssr")]
pub fn static_shell(options: LeptosOptions) -> impl IntoView {
    // The one script these screens load: it rewrites each `<time datetime>` in the reader's
    // own zone (app/src/pages/times.rs says why); without it the times stay in UTC, named.
    let scripts = view! { <script src="/local-times.js" defer></script> };
    document(&options, scripts, StaticApp)
}

fn document<S: IntoView, B: IntoView>(
    options: &LeptosOptions,
    scripts: S,
    body: impl Fn() -> B,
) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // The title and the stylesheet never change, so they are plain server-rendered
                // tags: managing them from the browser (leptos_meta) only added to the WASM.
                <title>"Offboard"</title>
                <link id="offboard" rel="stylesheet" href=stylesheet_href(options) />
                {scripts}
            </head>
            <body>{body()}</body>
        </html>
    }
}

/// The stylesheet's address. `make site` names it with a hash of its content and lists the
/// hash in the site's hash file (see `server/src/web.rs`), so browsers may keep it for good.
fn stylesheet_href(options: &LeptosOptions) -> String {
    let mut name = options.output_name.to_string();
    if options.hash_files {
        let hashes = std::fs::read_to_string(options.hash_file.as_ref()).unwrap_or_default();
        let css = hashes
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(kind, _)| kind.trim() == "css");
        if let Some((_, hash)) = css {
            name = format!("{name}.{}", hash.trim());
        }
    }
    format!("/{}/{name}.css", options.site_pkg_dir)
}

/// The steps of the admin's path, in order, as the navigation shows them, and whether the
/// server renders the step's screen whole (its link then leaves the app: `rel="external"`).
const STEPS: [(&str, &str, bool); 5] = [
    ("/connect", "Connect", false),
    ("/choose", "Choose users", false),
    ("/preview", "Preview", false),
    ("/run", "Run", false),
    ("/history", "History", true),
];

/// The steps, the team and the person, for someone signed in; nothing for a visitor who is
/// not (the sign-in, setup and invitation pages stand alone).
#[component]
fn SignedInNav() -> impl IntoView {
    let me = Resource::new(|| (), |_| crate::api::whoami());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                me.get().and_then(Result::ok).flatten().map(|me| {
                    let team = me.team.clone();
                    // One disclosure holds the navigation: on a phone it folds into a "Menu"
                    // button (a plain <details>, so it works without script and with the
                    // keyboard); from 600 px on it is always open and the button hidden
                    // (style/main.css, `.site-menu`).
                    view! {
                        <details class="site-menu">
                        <summary class="menu-button">
                            <span aria-hidden="true">"☰"</span>"Menu"{menu_badge(me.waiting)}
                        </summary>
                        {team.is_some().then(steps_nav)}
                        <nav aria-label="Account" class="account-nav">
                            // rel=external: these screens are the server's (see above).
                            {team.map(|t| view! {
                                <a href="/team" rel="external" class="team-link" data-testid="team-name">
                                    {format!("{} · {}", t.name, t.role.key())}
                                </a>
                            })}
                            {waiting_count(me.waiting)}
                            <A href="/audit" attr:rel="external" attr:class="audit-link">"Audit trail"</A>
                            <a href="/account" rel="external" class="account-link" data-testid="account-link">
                                {me.name.clone()}
                            </a>
                        </nav>
                        </details>
                    }
                })
            }}
        </Suspense>
    }
}

/// How many things wait for the person in the team shown, beside the team's name: a link to
/// Overview's "Waiting for you" (nothing when nothing waits). Its words say what the number
/// is, for a screen reader; rel=external reloads Overview, so the list is read afresh.
fn waiting_count(waiting: usize) -> Option<impl IntoView> {
    let name = match waiting {
        0 => return None,
        1 => "1 thing waiting for you".to_string(),
        n => format!("{n} things waiting for you"),
    };
    Some(view! {
        <a href="/#waiting-for-you" rel="external" class="waiting-count" aria-label=name.clone() title=name>
            {waiting}
        </a>
    })
}

/// The same count on the phone's folded "Menu" button, so it is seen without opening the
/// menu; a screen reader hears "Menu, 2 things waiting for you".
fn menu_badge(waiting: usize) -> Option<impl IntoView> {
    (waiting > 0).then(|| {
        let words = if waiting == 1 {
            ", 1 thing waiting for you".to_string()
        } else {
            format!(", {waiting} things waiting for you")
        };
        view! {
            <span class="waiting-badge" aria-hidden="true">{waiting}</span>
            <span class="visually-hidden">{words}</span>
        }
    })
}

fn steps_nav() -> impl IntoView {
    view! {
        <nav aria-label="Steps">
            <ol class="steps">
                {STEPS
                    .iter()
                    .enumerate()
                    .map(|(i, (href, label, served_whole))| {
                        view! {
                            <li>
                                <A href=*href attr:rel=served_whole.then_some("external")>
                                    <span class="step-number" aria-hidden="true">
                                        {i + 1}
                                    </span>
                                    {*label}
                                </A>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        </nav>
    }
}

#[component]
pub fn App() -> impl IntoView {
    // Effects run only in the browser, so this flips once the WASM has hydrated the page:
    // tests (and styles) can tell a live page from server-rendered HTML.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    // From then on every time on screen is in the browser's own zone (pages/times.rs).
    provide_context(pages::BrowserClock(hydrated.into()));
    view! {
        <Router>
            <Frame state=Signal::derive(move || hydrated.get().to_string())>
                <Routes fallback=pages::NotFound>
                    <Route path=StaticSegment("") view=pages::Overview />
                    <Route path=StaticSegment("connect") view=pages::Connect />
                    <Route path=StaticSegment("choose") view=pages::Choose />
                    <Route path=StaticSegment("preview") view=pages::PreviewPage />
                    <Route path=StaticSegment("run") view=pages::RunPage />
                </Routes>
            </Frame>
        </Router>
    }
}

/// The screens rendered by the server once their data is read (`SsrMode::Async`: the page
/// arrives whole, with no script to fill it in later).
#[cfg(feature = "ssr")]
#[component]
pub fn StaticApp() -> impl IntoView {
    view! {
        <Router>
            // "static": never hydrated, and complete as served.
            <Frame state=Signal::stored("static".to_string())>
                <Routes fallback=pages::NotFound>
                    <Route path=StaticSegment("sign-in") view=pages::SignIn ssr=SsrMode::Async />
                    <Route path=StaticSegment("setup") view=pages::Setup ssr=SsrMode::Async />
                    <Route path=StaticSegment("join") view=pages::Join ssr=SsrMode::Async />
                    <Route path=StaticSegment("reset") view=pages::Reset ssr=SsrMode::Async />
                    <Route path=StaticSegment("account") view=pages::Account ssr=SsrMode::Async />
                    <Route path=StaticSegment("team") view=pages::Team ssr=SsrMode::Async />
                    <Route path=StaticSegment("teams") view=pages::Teams ssr=SsrMode::Async />
                    <Route path=StaticSegment("history") view=pages::History ssr=SsrMode::Async />
                    <Route path=StaticSegment("audit") view=pages::AuditTrail ssr=SsrMode::Async />
                </Routes>
            </Frame>
        </Router>
    }
}

/// Skip link, header, the screen, footer. `state` is the frame's `data-hydrated`: "false"
/// until the WASM has taken the page over, then "true"; "static" on the screens the server
/// renders whole.
#[component]
fn Frame(state: Signal<String>, children: Children) -> impl IntoView {
    view! {
        <div class="app" data-hydrated=move || state.get()>
            <a class="skip-link" href="#main">
                "Skip to content"
            </a>
            <header class="site-header">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">
                        "⇥"
                    </span>
                    " Offboard"
                </A>
                <SignedInNav />
            </header>
            <main id="main" tabindex="-1">
                {children()}
            </main>
            <footer class="site-footer">
                <span>"Offboard " {env!("CARGO_PKG_VERSION")}</span>
                <span>"Deletes Stack Internal users, with a preview first and a record of everything."</span>
            </footer>
        </div>
    }
}
