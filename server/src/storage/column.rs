//! How values are stored, once for both databases: times as sortable RFC 3339 text
//! ([`Stamp`]), enums by name (`sqlx::Type` on each enum), JSON as text ([`JsonText`]),
//! everything else as itself.

use super::StorageError;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{ColumnIndex, Database, Decode, Encode, Type};

/// A time as stored: RFC 3339 UTC text with six fraction digits, so stored times sort
/// correctly as text (and compare with `<` in SQL) on both databases. The text is what
/// databases written by earlier versions hold: reading it back needs no migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(pub DateTime<Utc>);

impl Stamp {
    /// The stored text of `time`.
    pub fn text(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// Reads a stored time. The built-in team's row was stamped by SQLite's `strftime`
    /// (no fraction digits), which RFC 3339 allows too.
    pub fn parse(text: &str) -> Result<Stamp, StorageError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Stamp(t.with_timezone(&Utc)))
            .map_err(|_| StorageError::Damaged(format!("unreadable time {text:?}")))
    }
}

impl From<DateTime<Utc>> for Stamp {
    fn from(time: DateTime<Utc>) -> Stamp {
        Stamp(time)
    }
}

impl From<Stamp> for DateTime<Utc> {
    fn from(stamp: Stamp) -> DateTime<Utc> {
        stamp.0
    }
}

impl<DB: Database> Type<DB> for Stamp
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Stamp
where
    String: Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        Stamp::text(self.0).encode(buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Stamp
where
    String: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Stamp, BoxDynError> {
        Ok(Stamp::parse(&String::decode(value)?)?)
    }
}

/// A column that may be NULL, read into an `Option` field with `#[sqlx(try_from = "Maybe<…>")]`
/// (a time: `Maybe<Stamp>`, JSON: `Maybe<JsonText<T>>`, a secret: `Maybe<String>`).
pub struct Maybe<T>(pub Option<T>);

impl<DB: Database, T: Type<DB>> Type<DB> for Maybe<T> {
    fn type_info() -> DB::TypeInfo {
        T::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        T::compatible(ty)
    }
}

impl<'r, DB: Database, T: Decode<'r, DB> + Type<DB>> Decode<'r, DB> for Maybe<T> {
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Maybe<T>, BoxDynError> {
        Ok(Maybe(<Option<T> as Decode<'r, DB>>::decode(value)?))
    }
}

impl From<Maybe<Stamp>> for Option<DateTime<Utc>> {
    fn from(stamp: Maybe<Stamp>) -> Option<DateTime<Utc>> {
        stamp.0.map(|t| t.0)
    }
}

/// A secret read back (a password hash, a token's ciphertext): hidden from `Debug` prints.
impl From<Maybe<String>> for Option<model::hidden::Hidden<String>> {
    fn from(text: Maybe<String>) -> Option<model::hidden::Hidden<String>> {
        text.0.map(model::hidden::Hidden::new)
    }
}

impl<T> From<Maybe<JsonText<T>>> for Option<T> {
    fn from(json: Maybe<JsonText<T>>) -> Option<T> {
        json.0.map(|j| j.0)
    }
}

/// A value stored as its JSON text. Not `sqlx::types::Json`: that one is `jsonb` on
/// PostgreSQL, whose columns here are `text` like SQLite's (the same stored text on both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonText<T>(pub T);

impl<DB: Database, T> Type<DB> for JsonText<T>
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database, T: serde::Serialize> Encode<'q, DB> for JsonText<T>
where
    String: Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        serde_json::to_string(&self.0)?.encode(buf)
    }
}

impl<'r, DB: Database, T: serde::de::DeserializeOwned> Decode<'r, DB> for JsonText<T>
where
    String: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<JsonText<T>, BoxDynError> {
        Ok(JsonText(serde_json::from_str(&String::decode(value)?)?))
    }
}

/// A count or size read from the database (never negative there).
pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A count or position as the database stores it.
pub(super) fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A plain value both ways on `DB`.
pub trait Column<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

impl<DB: Database, T> Column<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send
{
}

/// A borrowed text both bound and used to name a column.
pub trait Text<'s, DB: Database>: Encode<'s, DB> + Type<DB> + ColumnIndex<DB::Row> {}

impl<'s, DB: Database> Text<'s, DB> for &'s str where
    &'s str: Encode<'s, DB> + Type<DB> + ColumnIndex<DB::Row>
{
}

/// The types the shared statements bind and read, named by the associated types of
/// [`Columns`]. Why not one where-clause per type in every `impl` (as before): Rust carries
/// to an impl's users only the bounds on a trait's `Self` and on its associated types, never
/// a bound such as `i64: Encode<DB>`. A bound on `Plain` (a type without parameters) is
/// carried, and its associated types resolve to the types they name, so `Plain: Columns<DB>`
/// stands for all of them; `Dialect` carries that bound in turn (see [`Typed`]), so
/// `DB: Dialect` alone says every column type works.
pub struct Plain;

/// See [`Plain`].
pub trait Named {
    type Str<'s>;
    type Int;
    type SmallInt;
    type Flag;
    type Words;
    type Bytes;
    type Index;
    type JobState;
    type ItemState;
    type Action;
    type ItemOutcome;
    type PreviewOutcome;
    type Role;
    type Policy;
    type Decision;
    type Purpose;
    type MaybeWords;
    type MaybeStamp;
    type MaybePreviewOutcome;
    type MaybeTeam;
    type MaybeAccount;
    type MaybeRole;
    type MaybeJob;
}

impl Named for Plain {
    type Str<'s> = &'s str;
    type Int = i64;
    type SmallInt = i32;
    type Flag = bool;
    type Words = String;
    type Bytes = Vec<u8>;
    type Index = usize;
    type JobState = model::deletion::JobState;
    type ItemState = crate::engine::ItemState;
    type Action = model::deletion::Action;
    type ItemOutcome = model::deletion::ItemOutcome;
    type PreviewOutcome = model::deletion::PreviewOutcome;
    type Role = model::team::Role;
    type Policy = model::team::ApprovalPolicy;
    type Decision = super::kinds::Decision;
    type Purpose = super::kinds::LinkPurpose;
    type MaybeWords = Option<String>;
    type MaybeStamp = Option<Stamp>;
    type MaybePreviewOutcome = Option<model::deletion::PreviewOutcome>;
    type MaybeTeam = Option<model::ids::TeamId>;
    type MaybeAccount = Option<model::ids::AccountId>;
    type MaybeRole = Option<model::team::Role>;
    type MaybeJob = Option<model::ids::JobId>;
}

/// Every column type of [`Plain`] works on `DB`: what a shared statement needs of the
/// database besides [`super::store::Dialect`].
pub trait Columns<DB: Database>:
    for<'s> Named<
    Str<'s>: Text<'s, DB>,
    Int: Column<DB>,
    SmallInt: Column<DB>,
    Flag: Column<DB>,
    Words: Column<DB>,
    Bytes: Column<DB>,
    Index: ColumnIndex<DB::Row>,
    JobState: Column<DB>,
    ItemState: Column<DB>,
    Action: Column<DB>,
    ItemOutcome: Column<DB>,
    PreviewOutcome: Column<DB>,
    Role: Column<DB>,
    Policy: Column<DB>,
    Decision: Column<DB>,
    Purpose: Column<DB>,
    MaybeWords: for<'q> Encode<'q, DB>,
    MaybeStamp: for<'q> Encode<'q, DB>,
    MaybePreviewOutcome: for<'q> Encode<'q, DB>,
    MaybeTeam: for<'q> Encode<'q, DB>,
    MaybeAccount: for<'q> Encode<'q, DB>,
    MaybeRole: for<'q> Encode<'q, DB>,
    MaybeJob: for<'q> Encode<'q, DB>,
>
{
}

impl Columns<sqlx::Sqlite> for Plain {}
impl Columns<sqlx::Postgres> for Plain {}

/// Which type names a database's column types: [`Plain`] for both. Only here so that
/// [`super::store::Dialect`] can carry `Plain: Columns<Self>` as a supertrait (`Typed<Names =
/// Plain> + Typed<Names: Columns<Self>>`): a bound on `Self`'s associated type travels with
/// the trait, a bound on `Plain` written in the trait's where-clause would not.
pub trait Typed {
    type Names;
}

impl Typed for sqlx::Sqlite {
    type Names = Plain;
}
impl Typed for sqlx::Postgres {
    type Names = Plain;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stamps_keep_todays_sortable_text() {
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        assert_eq!(Stamp::text(t), "2026-03-04T05:06:07.000000Z");
        assert_eq!(
            Stamp::parse("2026-03-04T05:06:07.000000Z").unwrap(),
            Stamp(t)
        );
        // The built-in team's stamp, as SQLite's strftime wrote it.
        assert_eq!(Stamp::parse("2026-03-04T05:06:07Z").unwrap(), Stamp(t));
        assert!(Stamp::parse("yesterday").is_err());
        assert!(Stamp::parse("").is_err());
        let later = t + chrono::Duration::microseconds(1);
        assert!(Stamp::text(t) < Stamp::text(later));
    }
}
