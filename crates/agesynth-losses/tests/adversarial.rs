//! Worked values of every adversarial loss, and finiteness on saturated logits.

use agesynth_losses::adversarial::*;
use agesynth_losses::{softplus, AdversarialLoss};
use candle_core::{Device, Tensor, Var};

fn t(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn scalar(x: &Tensor) -> f64 {
    x.to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-5, "{a} != {b}");
}

// The worked case used below: real logits [0, 2], fake logits [0, -1].
// softplus(0) = ln 2 = 0.693147, softplus(-1) = ln(1 + e^-1) = 0.313262,
// softplus(1) = 1.313262, softplus(-2) = ln(1 + e^-2) = 0.126928.

#[test]
fn logistic_worked_case() {
    let (real, fake) = (t(&[0.0, 2.0]), t(&[0.0, -1.0]));
    // D: mean(softplus(-0), softplus(-2)) + mean(softplus(0), softplus(-1))
    //  = (0.693147 + 0.126928)/2 + (0.693147 + 0.313262)/2 = 0.410038 + 0.503205
    let d = AdversarialLoss::Logistic.d_loss(&real, &fake).unwrap();
    close(scalar(&d), 0.913242);
    // G: mean(softplus(-0), softplus(1)) = (0.693147 + 1.313262)/2
    let g = AdversarialLoss::Logistic.g_loss(&fake).unwrap();
    close(scalar(&g), 1.003204);
}

#[test]
fn hinge_worked_case() {
    let (real, fake) = (t(&[0.0, 2.0]), t(&[0.0, -1.0]));
    // D: mean(relu(1-0), relu(1-2)) + mean(relu(1+0), relu(1-1)) = 0.5 + 0.5
    close(
        scalar(&AdversarialLoss::Hinge.d_loss(&real, &fake).unwrap()),
        1.0,
    );
    // G: -mean(0, -1) = 0.5
    close(scalar(&AdversarialLoss::Hinge.g_loss(&fake).unwrap()), 0.5);
}

#[test]
fn least_squares_worked_case() {
    let (real, fake) = (t(&[0.0, 2.0]), t(&[0.0, -1.0]));
    // D: ½ mean((0-1)², (2-1)²) + ½ mean(0², (-1)²) = ½·1 + ½·½ = 0.75
    close(
        scalar(&AdversarialLoss::LeastSquares.d_loss(&real, &fake).unwrap()),
        0.75,
    );
    // G: ½ mean((0-1)², (-1-1)²) = ½ · 5/2 = 1.25
    close(
        scalar(&AdversarialLoss::LeastSquares.g_loss(&fake).unwrap()),
        1.25,
    );
}

#[test]
fn wgan_worked_case() {
    let (real, fake) = (t(&[0.0, 2.0]), t(&[0.0, -1.0]));
    let l = AdversarialLoss::Wgan { drift: 0.001 };
    // D: mean fake - mean real + 0.001 mean real² = -0.5 - 1 + 0.001·2 = -1.498
    close(scalar(&l.d_loss(&real, &fake).unwrap()), -1.498);
    // G: -mean fake = 0.5
    close(scalar(&l.g_loss(&fake).unwrap()), 0.5);
    let l0 = AdversarialLoss::Wgan { drift: 0.0 };
    close(scalar(&l0.d_loss(&real, &fake).unwrap()), -1.5);
}

#[test]
fn softplus_is_finite_and_exact_on_saturated_logits() {
    let x = t(&[-1e4, -30.0, 0.0, 30.0, 1e4]);
    let y = softplus(&x).unwrap().to_vec1::<f32>().unwrap();
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    close(y[0] as f64, 0.0);
    close(y[1] as f64, (-30f64).exp().ln_1p());
    close(y[2] as f64, std::f64::consts::LN_2);
    close(y[3] as f64, 30.0);
    close(y[4] as f64, 1e4);
}

#[test]
fn softplus_losses_and_gradients_finite_at_1e4() {
    let real = Var::new(&[1e4f32, -1e4], &Device::Cpu).unwrap();
    let fake = Var::new(&[1e4f32, -1e4], &Device::Cpu).unwrap();
    // D: mean(softplus(-1e4), softplus(1e4)) + mean(softplus(1e4), softplus(-1e4))
    //  = (0 + 1e4)/2 + (1e4 + 0)/2 = 1e4
    let d = d_logistic(real.as_tensor(), fake.as_tensor()).unwrap();
    close(scalar(&d), 1e4);
    let grads = d.backward().unwrap();
    // d/dr_i mean softplus(-r) = -sigmoid(-r_i)/2: [-0, -0.5];
    // d/df_i mean softplus(f) = sigmoid(f_i)/2: [0.5, 0].
    let gr = grads
        .get(real.as_tensor())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let gf = grads
        .get(fake.as_tensor())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(gr.iter().chain(&gf).all(|v| v.is_finite()));
    close(gr[0] as f64, 0.0);
    close(gr[1] as f64, -0.5);
    close(gf[0] as f64, 0.5);
    close(gf[1] as f64, 0.0);
    // G: mean(softplus(-1e4), softplus(1e4)) = 5000, gradient [-0, -0.5].
    let g = g_logistic(fake.as_tensor()).unwrap();
    close(scalar(&g), 5e3);
    let gg = g.backward().unwrap();
    let gf = gg.get(fake.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    close(gf[0] as f64, 0.0);
    close(gf[1] as f64, -0.5);
}

#[test]
fn losses_average_over_patch_logits() {
    // (N, 1, h, w) patch logits: every element counts once.
    let real = Tensor::new(&[[[[0f32, 2.0]]]], &Device::Cpu).unwrap();
    let fake = Tensor::new(&[[[[0f32, -1.0]]]], &Device::Cpu).unwrap();
    close(
        scalar(&AdversarialLoss::Hinge.d_loss(&real, &fake).unwrap()),
        1.0,
    );
}
