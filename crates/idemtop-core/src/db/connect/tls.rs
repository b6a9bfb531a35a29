//! TLS failures explained (certificates, host names, modes).

use super::*;

/// The TLS part of a connection failure as a sentence, `None` when it is not about TLS.
pub(super) fn tls_failure(e: &sqlx::Error, mode: Option<PgSslMode>) -> Option<String> {
    use rustls::{AlertDescription, CertificateError};
    if let sqlx::Error::Tls(t) = e {
        if t.to_string().contains("server does not support TLS") {
            let mode = mode.map(mode_name).unwrap_or("require");
            return Some(format!(
                "the server does not support TLS (ssl is off there), but sslmode={mode} requires \
                 it: turn ssl on in the server, or connect with sslmode=prefer to allow plaintext"
            ));
        }
    }
    let err = rustls_error(e)?;
    let why = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "the server's certificate is not signed by a \
                trusted CA (unknown CA): set sslrootcert to the certificate of the CA that signed \
                it"
            .to_string(),
            CertificateError::NotValidForNameContext { expected, presented } => {
                let names: Vec<String> = presented.iter().map(|n| presented_name(n)).collect();
                let names = if names.is_empty() {
                    "no host name at all in its subjectAltName".to_string()
                } else {
                    names.join(", ")
                };
                hostname_mismatch(Some((&expected.to_str(), &names)), mode)
            }
            CertificateError::NotValidForName => hostname_mismatch(None, mode),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)".to_string()
            }
            CertificateError::Revoked => "the server's certificate is revoked".to_string(),
            CertificateError::BadSignature => {
                "the server's certificate has a bad signature".to_string()
            }
            other => format!(
                "the server's certificate was rejected: {} (check it against sslrootcert)",
                sanitize::line(&rustls::Error::InvalidCertificate(other.clone()).to_string())
            ),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError
            | AlertDescription::AccessDenied),
        ) => format!(
            "the server rejected our TLS client certificate ({}): set sslcert and sslkey to a \
             certificate signed by a CA in the server's ssl_ca_file",
            sanitize::line(&format!("{alert:?}"))
        ),
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::HandshakeFailure | AlertDescription::ProtocolVersion),
        ) => format!(
            "no TLS version or cipher in common with the server ({}): idemtop needs TLS 1.2 or newer",
            sanitize::line(&format!("{alert:?}"))
        ),
        other => format!("TLS error: {}", sanitize::line(&other.to_string())),
    };
    Some(why)
}

/// `names`: the host name connected to and the names the certificate lists, when known.
pub(super) fn hostname_mismatch(names: Option<(&str, &str)>, mode: Option<PgSslMode>) -> String {
    let mut why = match names {
        Some((expected, listed)) => format!(
            "the server's certificate does not match the host name {} (hostname mismatch: it \
             is for {}): connect by a name it lists",
            sanitize::line(expected),
            sanitize::line(listed)
        ),
        None => "the server's certificate does not match the host name connected to (hostname \
                 mismatch): connect by a name it lists"
            .to_string(),
    };
    if matches!(mode, Some(PgSslMode::VerifyCa)) {
        // sqlx 0.8.6 misses the error variant rustls 0.23.24 introduced for a name mismatch,
        // so its verify-ca checks the host name too (launchbadge/sqlx#3793, fixed after 0.8.6).
        why.push_str(
            " (unlike libpq, sqlx 0.8.6 checks the name for sslmode=verify-ca too, and so for \
             require when a root certificate is present)",
        );
    }
    why
}

/// `DnsName("db.example.org")` -> `db.example.org`, `IpAddress(10.0.0.1)` -> `10.0.0.1`.
pub(super) fn presented_name(name: &str) -> String {
    for prefix in ["DnsName(", "IpAddress(", "UriName("] {
        if let Some(inner) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            return inner.trim_matches('"').to_owned();
        }
    }
    name.to_owned()
}

/// The rustls error inside a sqlx error: handshake failures arrive as I/O errors wrapping it.
pub(super) fn rustls_error(e: &sqlx::Error) -> Option<&rustls::Error> {
    match e {
        sqlx::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        sqlx::Error::Tls(t) => t.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

pub(super) fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}
