//! Tests of what the steps share: recording a failure.

use rotation::error::{EventError, FailureKind, FunctionError};
use rotation::failure::Failed;

use super::testkit::*;
use super::*;

fn failing() -> Failing {
    Failing {
        record: deploying(Some(COMMAND)),
        failure: RotationFailure::new(FailureStage::Verify, "DeployCert Failed on the host: no"),
    }
}

#[test]
fn a_recorded_failure_is_the_outcome() {
    let f = failing();
    let o = failed(
        &f,
        Ok(Failed {
            attempts: 1,
            alerted: true,
        }),
    )
    .unwrap();
    assert_eq!(
        o,
        Outcome::Failed {
            host: HOST.into(),
            reason: "DeployCert Failed on the host: no".into()
        }
    );
}

#[test]
fn a_failure_that_lost_a_race_is_ignored() {
    assert!(matches!(
        failed(&failing(), Err(conflict())),
        Ok(Outcome::Ignored { .. })
    ));
}

#[test]
fn a_failure_that_cannot_be_recorded_fails_the_invocation() {
    let e = failed(&failing(), Err(backend(false))).unwrap_err();
    assert!(matches!(e, EventError::Store(_)));
    assert_eq!(FunctionError::from(e).kind, FailureKind::Permanent);
    let e = failed(&failing(), Err(backend(true))).unwrap_err();
    assert_eq!(FunctionError::from(e).kind, FailureKind::Retryable);
}
