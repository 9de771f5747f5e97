//! HTTP Digest on the simulators' side: the challenge they send and the
//! check of a client's answer (the response recomputed with the known
//! password), as door stations do it.

use digest_auth::{AuthContext, AuthorizationHeader, HttpMethod};

/// One simulated device's digest realm, nonce and credentials.
#[derive(Debug, Clone)]
pub struct DigestGate {
    /// Realm announced.
    pub realm: String,
    nonce: String,
    user: String,
    password: String,
}

impl DigestGate {
    /// A gate with a fresh random nonce.
    pub fn new(realm: &str, user: &str, password: &str) -> Self {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        Self {
            realm: realm.to_owned(),
            nonce,
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The `WWW-Authenticate` header value.
    pub fn challenge(&self) -> String {
        format!(
            "Digest realm=\"{}\", qop=\"auth\", nonce=\"{}\", algorithm=MD5",
            self.realm, self.nonce
        )
    }

    /// Whether `authorization` answers the challenge for this request.
    pub fn check(&self, method: &str, authorization: Option<&str>) -> bool {
        let Some(header) = authorization else {
            return false;
        };
        let Ok(given) = AuthorizationHeader::parse(header) else {
            return false;
        };
        if given.username != self.user || given.nonce != self.nonce || given.realm != self.realm {
            return false;
        }
        let mut expected = given.clone();
        let context = AuthContext::new_with_method(
            self.user.as_str(),
            self.password.as_str(),
            given.uri.as_str(),
            None::<&[u8]>,
            HttpMethod::from(method.to_owned()),
        );
        expected.digest(&context);
        expected.response == given.response
    }
}
