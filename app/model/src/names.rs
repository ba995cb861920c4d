//! Enum names in addresses, forms and the database: derived once from the variants (strum's
//! derives, `serialize_all`), read and written one way ([`Named`]), pinned by tests
//! ([`assert_names`]) so a renamed variant cannot quietly break stored rows or old links.
//!
//! Why strum and not serde's `rename_all` with a helper: some enums have two names. `Action`
//! and `PreviewOutcome` are stored in JSON under the variant's own name (`NotFound`) but travel
//! in forms and URLs as `not_found`; serde can give only one, and changing it would change
//! stored rows. strum's derives give the second name without touching serde, say per enum
//! whether a form may send any case (`ascii_case_insensitive`), and expand to plain `match`es
//! (no runtime code, nothing extra in the WASM bundle).

use std::fmt::Debug;
use std::str::FromStr;

/// An enum whose variants each have one name. Derive it with
/// `#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]` and
/// `#[strum(serialize_all = "…")]` (plus `ascii_case_insensitive` where a form may send any case).
pub trait Named: Copy + 'static + strum::VariantArray + Into<&'static str> + FromStr {
    /// The variant's name.
    fn key(self) -> &'static str {
        self.into()
    }

    /// The variant named `text` (surrounding space ignored; case as the enum's derive says).
    /// Anything else is `None`, never a guess.
    fn from_key(text: &str) -> Option<Self> {
        text.trim().parse().ok()
    }
}

impl<T> Named for T where T: Copy + 'static + strum::VariantArray + Into<&'static str> + FromStr {}

/// For tests: `T`'s variants, in declaration order, are named exactly `names`, and each name
/// reads back as its variant. Pinning the strings here is what makes a rename fail a test.
#[doc(hidden)]
pub fn assert_names<T: Named + Debug + PartialEq>(names: &[&str]) {
    let got: Vec<&str> = T::VARIANTS.iter().map(|v| v.key()).collect();
    assert_eq!(got, names, "the names of {}", std::any::type_name::<T>());
    for v in T::VARIANTS {
        assert_eq!(T::from_key(v.key()), Some(*v));
        assert_eq!(T::from_key(&format!(" {} ", v.key())), Some(*v));
    }
    assert_eq!(T::from_key(""), None);
}
