//! The page frame every screen shares: document head, header with the steps of the flow,
//! footer with the version, and the routes.

use crate::pages;
use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router, Routes, A},
    StaticSegment,
};

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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
                <link id="offboard" rel="stylesheet" href=stylesheet_href(&options) />
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
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

/// The steps of the admin's path, in order, as the navigation shows them.
const STEPS: [(&str, &str); 5] = [
    ("/connect", "Connect"),
    ("/choose", "Choose users"),
    ("/preview", "Preview"),
    ("/run", "Run"),
    ("/history", "History"),
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
                    view! {
                        {team.is_some().then(steps_nav)}
                        <nav aria-label="Account" class="account-nav">
                            {team.map(|t| view! {
                                <A href="/team" attr:class="team-link" attr:data-testid="team-name">
                                    {format!("{} · {}", t.name, t.role.key())}
                                </A>
                            })}
                            <A href="/audit" attr:class="audit-link">"Audit trail"</A>
                            <A href="/account" attr:class="account-link" attr:data-testid="account-link">
                                {me.name.clone()}
                            </A>
                        </nav>
                    }
                })
            }}
        </Suspense>
    }
}

fn steps_nav() -> impl IntoView {
    view! {
        <nav aria-label="Steps">
            <ol class="steps">
                {STEPS
                    .iter()
                    .enumerate()
                    .map(|(i, (href, label))| {
                        view! {
                            <li>
                                <A href=*href>
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
    view! {
        <Router>
            <div class="app" data-hydrated=move || hydrated.get().to_string()>
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
                <Routes fallback=pages::NotFound>
                    <Route path=StaticSegment("") view=pages::Overview />
                    <Route path=StaticSegment("connect") view=pages::Connect />
                    <Route path=StaticSegment("choose") view=pages::Choose />
                    <Route path=StaticSegment("preview") view=pages::PreviewPage />
                    <Route path=StaticSegment("run") view=pages::RunPage />
                    <Route path=StaticSegment("history") view=pages::History />
                    <Route path=StaticSegment("audit") view=pages::AuditTrail />
                    <Route path=StaticSegment("sign-in") view=pages::SignIn />
                    <Route path=StaticSegment("setup") view=pages::Setup />
                    <Route path=StaticSegment("join") view=pages::Join />
                    <Route path=StaticSegment("reset") view=pages::Reset />
                    <Route path=StaticSegment("account") view=pages::Account />
                    <Route path=StaticSegment("team") view=pages::Team />
                    <Route path=StaticSegment("teams") view=pages::Teams />
                </Routes>
            </main>
            <footer class="site-footer">
                <span>"Offboard " {env!("CARGO_PKG_VERSION")}</span>
                <span>"Deletes Stack Internal users through SCIM, with a preview and a record."</span>
            </footer>
            </div>
        </Router>
    }
}
