//! Following a stream of Server-Sent Events in the browser, in one place: named events go to
//! their handlers, the address is made anew at every (re)opening (so it can say where the page
//! stands), the stream is reopened after the browser gives up on it, and it is closed when the
//! page goes away or a handler says the stream is over.
//!
//! Why a reopen of our own: the browser resumes an `EventSource` by itself after a network
//! error, but gives up for good when the server answers with an error (a console restarting
//! behind a proxy answers 502/503 for a moment), and then the page would freeze.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{Event, EventSource, MessageEvent};

/// What a handler wants after an event.
pub enum Next {
    /// Keep following.
    Listen,
    /// The stream is over: close it and never reopen.
    Stop,
}

/// A named event's handler; it receives the event's data.
type Handler = Box<dyn FnMut(String) -> Next>;

/// What to follow and what to do with it.
pub struct Follow {
    /// The stream's address, asked again at every opening.
    pub address: Box<dyn Fn() -> String>,
    /// Handlers by event name (`event:` in the stream).
    pub events: Vec<(&'static str, Handler)>,
    /// Called when a connection opens (the first one, and every reconnection).
    pub on_open: Box<dyn FnMut()>,
    /// Called when the connection is lost (the browser may already be reconnecting).
    pub on_lost: Box<dyn FnMut()>,
    /// How long to wait before reopening a stream the browser gave up on.
    pub reopen_after: Duration,
}

/// The stream open now, with the closures it calls (kept alive while it is open).
struct Open {
    source: EventSource,
    _listeners: Vec<Closure<dyn FnMut(Event)>>,
}

struct Following {
    spec: RefCell<Follow>,
    open: RefCell<Option<Open>>,
    stopped: RefCell<bool>,
}

/// Starts following; the stream closes when the calling component is cleaned up.
pub fn follow(spec: Follow) {
    let following = Rc::new(Following {
        spec: RefCell::new(spec),
        open: RefCell::new(None),
        stopped: RefCell::new(false),
    });
    open(following.clone());
    let held = send_wrapper::SendWrapper::new(following);
    leptos::prelude::on_cleanup(move || stop(&held));
}

fn stop(following: &Following) {
    *following.stopped.borrow_mut() = true;
    if let Some(current) = following.open.borrow().as_ref() {
        current.source.close();
    }
}

fn open(following: Rc<Following>) {
    if *following.stopped.borrow() {
        return;
    }
    if let Some(old) = following.open.borrow_mut().take() {
        old.source.close();
    }
    let address = (following.spec.borrow().address)();
    let Ok(source) = EventSource::new(&address) else {
        return;
    };
    let names: Vec<&'static str> = following
        .spec
        .borrow()
        .events
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let mut listeners = Vec::with_capacity(names.len() + 2);
    for (index, name) in names.into_iter().enumerate() {
        let following = following.clone();
        let listener = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            let data = event
                .dyn_ref::<MessageEvent>()
                .and_then(|m| m.data().as_string())
                .unwrap_or_default();
            // Closing before anything else when the stream is over: otherwise the browser
            // reconnects to a stream that has ended.
            let next = (following.spec.borrow_mut().events[index].1)(data);
            if matches!(next, Next::Stop) {
                stop(&following);
            }
        });
        listen(&source, name, &listener);
        listeners.push(listener);
    }
    let on_open = {
        let following = following.clone();
        Closure::<dyn FnMut(Event)>::new(move |_: Event| (following.spec.borrow_mut().on_open)())
    };
    let on_error = {
        let following = following.clone();
        Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            if *following.stopped.borrow() {
                return;
            }
            (following.spec.borrow_mut().on_lost)();
            let given_up = following
                .open
                .borrow()
                .as_ref()
                .is_some_and(|o| o.source.ready_state() == EventSource::CLOSED);
            if given_up {
                let delay = following.spec.borrow().reopen_after;
                let again = send_wrapper::SendWrapper::new(following.clone());
                leptos::prelude::set_timeout(move || open(again.take()), delay);
            }
        })
    };
    listen(&source, "open", &on_open);
    listen(&source, "error", &on_error);
    listeners.push(on_open);
    listeners.push(on_error);
    *following.open.borrow_mut() = Some(Open {
        source,
        _listeners: listeners,
    });
}

fn listen(source: &EventSource, name: &str, listener: &Closure<dyn FnMut(Event)>) {
    // Adding a listener fails only for a malformed name; ours are fixed words.
    let _ = source.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
}
