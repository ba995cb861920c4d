//! The History screen: the team's past runs, who ran them, and their reports.

use super::parts::{action_words, error_text, state_words, thousands, ErrorBox, OutcomeBar};
use super::preview::encode;
use super::requests::ApprovalRequests;
use super::times::When;
use crate::api::list_jobs;
use crate::backend::ReportKind;
use leptos::prelude::*;

#[component]
pub fn History() -> impl IntoView {
    let jobs = Resource::new(|| (), |_| list_jobs());
    view! {
        <section class="card" aria-labelledby="history-heading">
            <h1 id="history-heading">"History"</h1>
            <p class="lead">"Every run for your team, newest first, with its reports."</p>
            <Transition fallback=|| view! { <p>"Loading history…"</p> }>
                {move || {
                    jobs.get()
                        .map(|r| match r {
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                            Ok(list) if list.is_empty() => {
                                view! { <p>"No runs yet."</p> }.into_any()
                            }
                            Ok(mut list) => {
                                list.sort_by(|a, b| b.created_at.cmp(&a.created_at));
                                view! {
                                    <div class="table-wrap">
                                        <table class="stack history">
                                            <caption class="visually-hidden">"Past runs"</caption>
                                            <thead>
                                                <tr>
                                                    <th scope="col">"When"</th>
                                                    <th scope="col">"Site"</th>
                                                    <th scope="col">"Action"</th>
                                                    <th scope="col">"Who"</th>
                                                    <th scope="col">"State"</th>
                                                    <th scope="col">"Results"</th>
                                                    <th scope="col">"Reports"</th>
                                                </tr>
                                            </thead>
                                            <tbody>
                                                {list
                                                    .into_iter()
                                                    .map(|j| {
                                                        let id = encode(&j.id);
                                                        // The run is named by its time, in the reader's zone: a
                                                        // <time> inside each link's name, never a time in a label.
                                                        let at = j.created_at.clone();
                                                        let of_run = move |what: &str| view! {
                                                            <span class="visually-hidden">{format!("{what} of the run of ")}<When at=at.clone() /></span>
                                                        };
                                                        view! {
                                                            <tr>
                                                                <td data-label="When">
                                                                    <a href=format!("/run?id={id}")>
                                                                        <span class="visually-hidden">"Open the run of "</span>
                                                                        <When at=j.created_at.clone() />
                                                                    </a>
                                                                </td>
                                                                <td data-label="Site" class="site">{j.site_url}</td>
                                                                <td data-label="Action">{action_words(j.action)}</td>
                                                                <td data-label="Who">
                                                                    {match &j.approved_by {
                                                                        Some(a) => format!("{}, approved by {a}", j.created_by),
                                                                        None => j.created_by.clone(),
                                                                    }}
                                                                </td>
                                                                <td data-label="State">
                                                                    <span>
                                                                        {state_words(j.state).to_string()}
                                                                        {j.reason.map(|r| format!(": {r}"))}
                                                                    </span>
                                                                </td>
                                                                <td data-label="Results" class="results">
                                                                    <div>
                                                                        {format!("{} of {} done", thousands(j.done), thousands(j.total))}
                                                                        <OutcomeBar counts=j.counts total=j.total action=j.action />
                                                                    </div>
                                                                </td>
                                                                <td data-label="Reports" class="links">
                                                                    <span>
                                                                        <a href=ReportKind::Failures.run_download(&id) download=""><span aria-hidden="true">"failures"</span>{of_run("Failures JSON")}</a>
                                                                        " · "
                                                                        <a href=ReportKind::ResultsCsv.run_download(&id) download=""><span aria-hidden="true">"CSV"</span>{of_run("Results CSV")}</a>
                                                                        " · "
                                                                        <a href=ReportKind::ResultsJson.run_download(&id) download=""><span aria-hidden="true">"JSON"</span>{of_run("Results JSON")}</a>
                                                                    </span>
                                                                </td>
                                                            </tr>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </tbody>
                                        </table>
                                    </div>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
        <ApprovalRequests />
    }
    .into_any()
}
