//! `runtime::quiet_candle_pool` sets candle's spin limit only when the user
//! has not. (Its own test binary: it changes the process environment, which
//! must not race with other tests.)

use agesynth_nn::runtime::{quiet_candle_pool, CANDLE_SPIN_LIMIT_VAR};

#[test]
fn sets_the_spin_limit_unless_the_user_did() {
    std::env::set_var(CANDLE_SPIN_LIMIT_VAR, "123");
    assert!(!quiet_candle_pool());
    assert_eq!(std::env::var(CANDLE_SPIN_LIMIT_VAR).unwrap(), "123");
    std::env::remove_var(CANDLE_SPIN_LIMIT_VAR);
    assert!(quiet_candle_pool());
    assert_eq!(std::env::var(CANDLE_SPIN_LIMIT_VAR).unwrap(), "0");
}
