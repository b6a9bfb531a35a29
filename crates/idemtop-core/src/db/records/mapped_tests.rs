//! Unit tests of `mapped.rs`: keys as typed.
use super::*;

fn col(name: &str, kind: ColumnKind) -> KeyColumn {
    KeyColumn {
        name: name.into(),
        quoted: quote(name),
        kind,
    }
}

#[test]
fn keys_of_every_type_are_read_as_typed() {
    let cols = [
        col("user_id", ColumnKind::Integer),
        col("k", ColumnKind::Text),
    ];
    let k = parse_key(" 42 , a,b ", &cols).unwrap();
    assert_eq!(k.0, vec![KeyPart::Int(42), KeyPart::Text("a,b".into())]);
    assert_eq!(k.to_string(), "42,a,b");
    let err = parse_key("x,y", &cols).unwrap_err();
    assert!(err.contains("user_id is an integer"), "{err}");
    let err = parse_key("42", &cols).unwrap_err();
    assert!(
        err.contains("expected 2 values separated by commas"),
        "{err}"
    );
    let bytes = [col("b", ColumnKind::Bytea)];
    for s in ["\\x0a1B", "0a1b", "\\\\x0a1b"] {
        assert_eq!(
            parse_key(s, &bytes).unwrap().0,
            vec![KeyPart::Bytes(vec![10, 27])]
        );
    }
    assert!(parse_key("0a1", &bytes).unwrap_err().contains("odd number"));
    assert!(parse_key("zz", &bytes).unwrap_err().contains("not hex"));
    assert_eq!(parse_key("\\x0a1b", &bytes).unwrap().to_string(), "\\x0a1b");
    let uuid = [col("id", ColumnKind::Uuid)];
    assert!(parse_key("not-a-uuid", &uuid)
        .unwrap_err()
        .contains("id is a UUID"));
    assert!(parse_key("", &uuid).unwrap_err().contains("no key given"));
    assert!(parse_key("x", &[])
        .unwrap_err()
        .contains("n/a: no key column"));
}
