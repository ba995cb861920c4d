//! The Connect screen: the site, its SCIM token (write-only), the admin's own email, and a
//! check of the connection in plain words. Only a team owner may change them: anyone else
//! sees them read-only, with the reason. A token the site refuses is not kept, and the refusal
//! stands under the token field.
//!
//! The forms post to their server functions, so they work before the WASM has loaded; once it
//! has, a submit is caught and sent with `dispatch` from the fields' values. Not `ActionForm`:
//! reading a form into the function's arguments brings `serde_qs`'s decoder into the browser
//! bundle, for three forms (docs/benchmarks.md).

use super::parts::{error_text, ErrorBox, PlainMessage};
use crate::api::{load_connection, CheckConnection, ForgetToken, SaveConnection};
use crate::backend::{ConnectionView, Diagnosis};
use crate::model::DiagnosisKind;
use crate::team::Role;
use leptos::html::Input;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// The verdict of a connection check: calm when it works, an alert when it does not.
#[component]
fn DiagnosisNote(
    diagnosis: Diagnosis,
    #[prop(optional)] id: Option<&'static str>,
) -> impl IntoView {
    // The message already says how many users the site lists.
    // The HTTP status, if the site gave one, is folded away (PlainMessage).
    let text = diagnosis.message;
    if diagnosis.ok {
        view! { <div role="status" class="ok" data-testid="diagnosis" id=id><PlainMessage message=text /></div> }.into_any()
    } else {
        view! { <div role="alert" class="error" data-testid="diagnosis" id=id><PlainMessage message=text /></div> }.into_any()
    }
}

/// "a viewer", "an operator": the person's role in a sentence.
fn role_in_words(role: Role) -> &'static str {
    match role {
        Role::Viewer => "a viewer",
        Role::Operator => "an operator",
        Role::Owner => "an owner",
    }
}

/// True when the typed address (site, SCIM base) is not the saved one, as the server compares
/// them (surrounding space aside).
fn address_changed(saved: (&str, &str), typed: (&str, &str)) -> bool {
    saved.0.trim() != typed.0.trim() || saved.1.trim() != typed.1.trim()
}

/// "Token saved, ending …ab12" or "No token saved".
fn token_sentence(view: &ConnectionView) -> String {
    match (view.token_saved, view.token_hint.is_empty()) {
        (false, _) => "No token saved".into(),
        (true, true) => "Token saved".into(),
        (true, false) => format!("Token saved, ending …{}", view.token_hint),
    }
}

#[component]
pub fn Connect() -> impl IntoView {
    let save = ServerAction::<SaveConnection>::new();
    let forget = ServerAction::<ForgetToken>::new();
    let check = ServerAction::<CheckConnection>::new();
    let me = Resource::new(|| (), |_| crate::api::whoami());
    // The person's role in the team (None: not known, the server decides alone).
    let role = move || {
        me.get()
            .and_then(Result::ok)
            .flatten()
            .and_then(|me| me.team)
            .map(|t| t.role)
    };
    // The site's refusal of a token just typed: said under the token field, which it is
    // about (the token was not kept).
    let refused = Signal::derive(move || match save.value().get() {
        Some(Ok((_, d))) if d.kind == DiagnosisKind::BadToken && !save.pending().get() => Some(d),
        _ => None,
    });
    let saved = Resource::new(
        move || (save.version().get(), forget.version().get()),
        |_| load_connection(),
    );
    // The latest verdict, whichever button produced it.
    let verdict = move || -> Option<Result<Diagnosis, ServerFnError>> {
        let from_check = check.value().get();
        let from_save = save.value().get().map(|r| r.map(|(_, d)| d));
        // The most recent action wins: a pending one hides the older answer.
        if check.pending().get() || save.pending().get() {
            return None;
        }
        from_check.or(from_save)
    };
    view! {
        <section class="card" aria-labelledby="connect-heading">
            <h1 id="connect-heading">"Connect your site"</h1>
            <p class="lead">
                "Enter your Stack Internal site address and its SCIM token. The token is stored encrypted on this server and is never shown again, not even to you."
            </p>
            <Transition fallback=|| view! { <p>"Loading the saved connection…"</p> }>
                {move || {
                    saved
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                            Ok(current) => match role() {
                                Some(role) if role < Role::Owner => {
                                    view! { <ReadOnlyConnection current role /> }.into_any()
                                }
                                _ => view! { <ConnectForm current save forget refused /> }.into_any(),
                            },
                        })
                }}
            </Transition>
        </section>
        <section class="card" aria-labelledby="check-heading">
            <h2 id="check-heading">"Connection check"</h2>
            <div aria-live="polite">
                {move || {
                    if save.pending().get() || check.pending().get() {
                        return view! { <p role="status">"Checking the connection…"</p> }
                            .into_any();
                    }
                    match verdict() {
                        None => {
                            view! {
                                <p>"Save your settings, or check the saved connection, to see whether Offboard can reach your site."</p>
                            }
                                .into_any()
                        }
                        Some(Ok(d)) if refused.get().is_some() && check.value().get().is_none() => {
                            let _ = d;
                            view! {
                                <p>"The site refused the token you typed, so it was not kept: see the SCIM token field above."</p>
                            }
                                .into_any()
                        }
                        Some(Ok(d)) => view! { <DiagnosisNote diagnosis=d /> }.into_any(),
                        Some(Err(e)) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                    }
                }}
            </div>
            // A viewer may not check (it asks the site); an operator may.
            {move || {
                (role() != Some(Role::Viewer)).then(|| view! {
                    <form
                        method="post"
                        action=CheckConnection::url()
                        on:submit=move |ev| {
                            ev.prevent_default();
                            check.dispatch(CheckConnection {});
                        }
                    >
                        <button type="submit" class="button">
                            "Check the saved connection"
                        </button>
                    </form>
                })
            }}
        </section>
    }
    .into_any()
}

/// The saved connection for someone who may not change it: what it is, and why there is no
/// form.
#[component]
fn ReadOnlyConnection(current: ConnectionView, role: Role) -> impl IntoView {
    view! {
        <p class="notice" data-testid="read-only-connection">
            {format!(
                "You are {} in this team: only a team owner may change the site, its token or the protected email, so this page only shows them. Ask an owner of your team if they must change.",
                role_in_words(role),
            )}
        </p>
        <dl class="facts">
            <dt>"Site address"</dt>
            <dd>{current.site_url.clone().unwrap_or_else(|| "None yet".to_string())}</dd>
            <dt>"SCIM token"</dt>
            <dd>{token_sentence(&current)}</dd>
            <dt>"Protected email"</dt>
            <dd>{current.operator_email.clone().unwrap_or_else(|| "None".to_string())}</dd>
        </dl>
    }
}

#[component]
fn ConnectForm(
    current: ConnectionView,
    save: ServerAction<SaveConnection>,
    forget: ServerAction<ForgetToken>,
    refused: Signal<Option<Diagnosis>>,
) -> impl IntoView {
    let token_line = token_sentence(&current);
    let has_token = current.token_saved;
    let advanced_open = current.scim_base_url.is_some();
    // The token box empties after every save, so a typed token never lingers on screen.
    let typed_token = RwSignal::new(String::new());
    Effect::new(move |_| {
        if save.version().get() > 0 {
            typed_token.set(String::new());
        }
    });
    let (site_url, operator_email, scim_base_url) = (
        NodeRef::<Input>::new(),
        NodeRef::<Input>::new(),
        NodeRef::<Input>::new(),
    );
    // The address as typed: changing it with a token saved and none typed asks what to do
    // with the token (kept for the new address, or removed), instead of losing it unasked.
    let saved_site = current.site_url.clone().unwrap_or_default();
    let saved_base = current.scim_base_url.clone().unwrap_or_default();
    let typed_site = RwSignal::new(saved_site.clone());
    let typed_base = RwSignal::new(saved_base.clone());
    let token_choice = RwSignal::new(None::<String>);
    let asks_about_token = {
        let (saved_site, saved_base) = (saved_site.clone(), saved_base.clone());
        move || {
            has_token
                && typed_token.with(|t| t.trim().is_empty())
                && address_changed(
                    (&saved_site, &saved_base),
                    (&typed_site.get(), &typed_base.get()),
                )
        }
    };
    let value_of = |field: NodeRef<Input>| field.get().map(|i| i.value()).unwrap_or_default();
    let submit = {
        let asks = asks_about_token.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            save.dispatch(SaveConnection {
                site_url: value_of(site_url),
                scim_base_url: value_of(scim_base_url),
                token: typed_token.get_untracked(),
                operator_email: value_of(operator_email),
                keep_token: asks().then(|| token_choice.get_untracked()).flatten(),
            });
        }
    };
    let token_question = move || {
        asks_about_token().then(|| {
            view! {
                <fieldset class="field token-choice" data-testid="token-choice">
                    <legend>
                        {format!("The saved token was made for {saved_site}. What should happen to it?")}
                    </legend>
                    <label>
                        <input
                            type="radio"
                            name="keep_token"
                            value="keep"
                            required
                            on:change=move |_| token_choice.set(Some("keep".into()))
                        />
                        " Keep it for the new address (the same site moved)"
                    </label>
                    <label>
                        <input
                            type="radio"
                            name="keep_token"
                            value="remove"
                            required
                            on:change=move |_| token_choice.set(Some("remove".into()))
                        />
                        " Remove it: I will type the new site's token above"
                    </label>
                </fieldset>
            }
        })
    };
    view! {
        <form class="form" method="post" action=SaveConnection::url() on:submit=submit>
            <div class="field">
                <label for="site_url">"Site address"</label>
                <input
                    id="site_url"
                    name="site_url"
                    node_ref=site_url
                    type="url"
                    required
                    placeholder="https://yourcompany.stackenterprise.co"
                    autocomplete="url"
                    value=current.site_url.clone().unwrap_or_default()
                    on:input=move |ev| typed_site.set(event_target_value(&ev))
                />
                <p class="hint">"The address you open in your browser to use your Stack Internal site."</p>
            </div>
            <div class="field">
                <label for="token">"SCIM token"</label>
                <p class="hint" id="token-state" data-testid="token-state">
                    {token_line}
                    {if has_token {
                        ". To replace it, type a new one; leave this empty to keep it."
                    } else {
                        ". Create one in your site's admin settings under SCIM."
                    }}
                </p>
                <input
                    id="token"
                    name="token"
                    type="password"
                    autocomplete="off"
                    spellcheck="false"
                    aria-describedby=move || {
                        if refused.get().is_some() { "token-state token-error" } else { "token-state" }
                    }
                    aria-invalid=move || refused.get().is_some().then_some("true")
                    prop:value=move || typed_token.get()
                    on:input=move |ev| typed_token.set(event_target_value(&ev))
                />
                {move || refused.get().map(|d| view! { <DiagnosisNote diagnosis=d id="token-error" /> })}
            </div>
            {token_question}
            <div class="field">
                <label for="operator_email">"Protected email"</label>
                <input
                    id="operator_email"
                    name="operator_email"
                    node_ref=operator_email
                    type="email"
                    autocomplete="email"
                    aria-describedby="operator-hint"
                    value=current.operator_email.clone().unwrap_or_default()
                />
                <p class="hint" id="operator-hint">
                    "Your own email on the site: that account is protected, a run never deletes or deactivates it."
                </p>
            </div>
            <details open=advanced_open>
                <summary>"Advanced"</summary>
                <div class="field">
                    <label for="scim_base_url">"SCIM base URL"</label>
                    <input
                        id="scim_base_url"
                        name="scim_base_url"
                        node_ref=scim_base_url
                        type="url"
                        aria-describedby="scim-hint"
                        value=current.scim_base_url.clone().unwrap_or_default()
                        on:input=move |ev| typed_base.set(event_target_value(&ev))
                    />
                    <p class="hint" id="scim-hint">
                        "Only if your site's SCIM address is not the usual one. Leave empty otherwise."
                    </p>
                </div>
            </details>
            <button type="submit" class="button primary">
                "Save and check"
            </button>
        </form>
        {has_token
            .then(|| {
                view! {
                    <form
                        class="inline-form"
                        method="post"
                        action=ForgetToken::url()
                        on:submit=move |ev| {
                            ev.prevent_default();
                            forget.dispatch(ForgetToken {});
                        }
                    >
                        <button type="submit" class="button">
                            "Remove token"
                        </button>
                    </form>
                }
            })}
        {move || {
            forget
                .value()
                .get()
                .and_then(|r| r.err())
                .map(|e| view! { <ErrorBox message=error_text(&e) /> })
        }}
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_different_address_asks_about_the_token() {
        let saved = ("https://acme.example", "");
        assert!(!address_changed(saved, ("https://acme.example", "")));
        assert!(!address_changed(saved, ("  https://acme.example ", " ")));
        assert!(address_changed(saved, ("https://new.example", "")));
        assert!(address_changed(
            saved,
            ("https://acme.example", "https://acme.example/scim")
        ));
        assert!(address_changed(("", ""), ("https://acme.example", "")));
    }

    #[test]
    fn token_sentence_never_needs_the_token() {
        let mut v = ConnectionView::default();
        assert_eq!(token_sentence(&v), "No token saved");
        v.token_saved = true;
        assert_eq!(token_sentence(&v), "Token saved");
        v.token_hint = "ab12".into();
        assert_eq!(token_sentence(&v), "Token saved, ending …ab12");
        v.token_saved = false;
        assert_eq!(token_sentence(&v), "No token saved");
    }
}
