//! A file that is not a SQLite database is refused with a clear error, and left exactly as
//! it was: the book never "repairs" a file it does not understand.

use book::store::{SqliteStore, StoreError};

#[test]
fn a_corrupt_file_is_refused_and_left_untouched() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("book.sqlite3");
    let garbage: Vec<u8> = (0..4096_u32).map(|index| (index * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).expect("write the corrupt file");

    let error = SqliteStore::open(&path).expect_err("garbage is not a database");

    assert!(
        matches!(error, StoreError::NotADatabase { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not a database"), "{error}");
    assert_eq!(
        std::fs::read(&path).expect("read back"),
        garbage,
        "the refused file changed"
    );
}
