//! `CommandError`: what a command's promise rejects with. The UI shows it as it is, so it is
//! serialized as the client library's message (a sentence that says what to do next), never
//! as a structure the UI would have to interpret.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("not signed in, or the session is over: sign in again")]
    NotLoggedIn,

    #[error("environment {0:?} is not one you may reach; pick one from the list")]
    NotReachable(String),

    #[error("{0}")]
    Client(#[from] gatehouse_client::Error),
}

pub type CommandResult<T> = Result<T, CommandError>;

impl Serialize for CommandError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl CommandError {
    /// The client library's messages mention the CLI (`run gatehouse login`); in the app the
    /// way on is the sign-in screen.
    pub fn for_app(self) -> Self {
        match self {
            CommandError::Client(
                gatehouse_client::Error::NotLoggedIn
                | gatehouse_client::Error::SessionExpired { .. },
            ) => CommandError::NotLoggedIn,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_reach_the_ui_as_sentences() {
        let e = CommandError::NotReachable("prod".into());
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!(
                "environment \"prod\" is not one you may reach; pick one from the list"
            )
        );
        let refused = CommandError::from(gatehouse_client::Error::LoginRefused(
            "invalid username or password".into(),
        ));
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            serde_json::json!("login refused: invalid username or password")
        );
    }

    #[test]
    fn an_ended_session_means_sign_in_again() {
        let expired = CommandError::from(gatehouse_client::Error::SessionExpired {
            identity: "ana".into(),
            gateway: "https://g".into(),
        });
        // Not the CLI's advice (`gatehouse login`): the app has its own sign-in screen.
        let msg = expired.for_app().to_string();
        assert!(msg.contains("sign in again"), "{msg}");
        assert!(!msg.contains("gatehouse login"), "{msg}");
    }
}
