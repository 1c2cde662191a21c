using PeftSharp.Methods.LoraPro;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.LoraPro;

/// <summary>
/// The reference's numeric test (methods_training.md §3: d_out = d_in = 3, r = 1, s = 2) and hand-sized checks of the
/// Sylvester solver and of the projection identity. Expected values are the reference's hand computation.
/// </summary>
public class LoraProMathTests
{
    private const double S = 2.0;

    private static Tensor M(double[,] v) => torch.tensor(v, dtype: ScalarType.Float64);

    private static Tensor A => M(new double[,] { { 1, 0, 1 } });

    private static Tensor B => M(new double[,] { { 1 }, { 2 }, { 0 } });

    private static Tensor G => M(new double[,] { { 1, 2, 0 }, { 0, 1, 3 }, { 2, 0, 1 } });

    // The LoRA gradients of G as the reference gives them: G_A = s·Bᵀg, G_B = s·g·Aᵀ.
    private static Tensor GradA => M(new double[,] { { 2, 8, 12 } });

    private static Tensor GradB => M(new double[,] { { 2 }, { 6 }, { 6 } });

    private static void Close(double[,] expected, Tensor actual, double tol = 1e-6)
    {
        var flat = actual.to_type(ScalarType.Float64).data<double>().ToArray();
        Assert.Equal(expected.Length, flat.Length);
        var i = 0;
        foreach (var e in expected)
        {
            Assert.True(Math.Abs(e - flat[i]) <= tol, $"element {i}: expected {e}, got {flat[i]}");
            i++;
        }
    }

    [Fact]
    public void The_autograd_gradients_of_the_reference_case_are_the_references_G_A_and_G_B()
    {
        // L = ⟨g, W0 + s·B·A⟩ has ∂L/∂W = g; autograd must give G_A = s·Bᵀg and G_B = s·g·Aᵀ.
        var a = A.clone().requires_grad_(true);
        var b = B.clone().requires_grad_(true);
        (G * (b.matmul(a) * S)).sum().backward();
        Close(new double[,] { { 2, 8, 12 } }, a.grad!);
        Close(new double[,] { { 2 }, { 6 }, { 6 } }, b.grad!);
    }

    [Fact]
    public void Adjusted_gradients_with_X_zero_match_the_reference_and_beat_plain_lora()
    {
        var inv = LoraProMath.Invert(A, B, 1e-8);
        var (gA, gB, x) = LoraProMath.Adjust(A, B, GradA, GradB, S, inv, solveX: false);
        Close(new double[,] { { 0.1, 0.4, 0.6 } }, gA);
        Close(new double[,] { { -0.1 }, { 0.05 }, { 0.75 } }, gB);
        Close(new double[,] { { 0 } }, x, 0);
        var equivalent = LoraProMath.EquivalentGradient(A, B, gA, gB, S);
        Close(new double[,] { { 0, 0.8, 1.0 }, { 0.5, 1.6, 2.5 }, { 1.5, 0, 1.5 } }, equivalent);
        Assert.Equal(2.190890, (equivalent - G).norm().item<double>(), 5);
        // Plain LoRA's equivalent gradient s(B·G_A + G_B·A) is 76.550637 away from g.
        var plain = LoraProMath.EquivalentGradient(A, B, GradA, GradB, S);
        Assert.Equal(76.550637, (plain - G).norm().item<double>(), 5);
    }

    [Fact]
    public void Sylvester_X_matches_the_reference_and_leaves_the_equivalent_gradient_unchanged()
    {
        var inv = LoraProMath.Invert(A, B, 1e-8);
        var (gA0, gB0, _) = LoraProMath.Adjust(A, B, GradA, GradB, S, inv, solveX: false);
        var (gA, gB, x) = LoraProMath.Adjust(A, B, GradA, GradB, S, inv, solveX: true);
        Close(new double[,] { { -0.1 } }, x);
        Close(new double[,] { { 0, 0.4, 0.5 } }, gA);
        Close(new double[,] { { 0 }, { 0.25 }, { 0.75 } }, gB);
        var diff = LoraProMath.EquivalentGradient(A, B, gA, gB, S) - LoraProMath.EquivalentGradient(A, B, gA0, gB0, S);
        Assert.True(diff.abs().max().item<double>() < 1e-12);
        // X brings (g_A, g_B) closer to (G_A, G_B): 258.705 → 258.635 (squared distance, as the reference states it).
        static double Dist(Tensor ga, Tensor gb) => (ga - GradA).square().sum().item<double>() + (gb - GradB).square().sum().item<double>();
        Assert.Equal(258.705, Dist(gA0, gB0), 3);
        Assert.Equal(258.635, Dist(gA, gB), 3);
    }

    [Fact]
    public void Sylvester_solver_recovers_a_known_two_by_two_solution()
    {
        // P = [[2,1],[1,3]], Q = diag(1, 4), X = [[1,2],[3,4]]: by hand P·X = [[5,8],[10,14]], X·Q = [[1,8],[3,16]].
        var p = M(new double[,] { { 2, 1 }, { 1, 3 } });
        var q = M(new double[,] { { 1, 0 }, { 0, 4 } });
        var c = M(new double[,] { { 6, 16 }, { 13, 30 } });
        Close(new double[,] { { 1, 2 }, { 3, 4 } }, LoraProMath.SolveSylvester(p, q, c), 1e-10);
    }

    [Fact]
    public void Equivalent_gradient_is_the_tangent_space_projection_of_g_for_any_X()
    {
        // r = 2, d_out = 5, d_in = 4: s·(B g_A + g_B A) = P_B·g + (I − P_B)·g·P_A with explicit projectors.
        var gen = new torch.Generator(11);
        var a = torch.randn([2, 4], generator: gen, dtype: ScalarType.Float64);
        var b = torch.randn([5, 2], generator: gen, dtype: ScalarType.Float64);
        var g = torch.randn([5, 4], generator: gen, dtype: ScalarType.Float64);
        const double s = 0.75;
        var gradA = b.t().matmul(g) * s;
        var gradB = g.matmul(a.t()) * s;
        var inv = LoraProMath.Invert(a, b, 0);
        var pb = b.matmul(torch.linalg.inv(b.t().matmul(b))).matmul(b.t());
        var pa = a.t().matmul(torch.linalg.inv(a.matmul(a.t()))).matmul(a);
        var projection = pb.matmul(g) + (torch.eye(5, dtype: ScalarType.Float64) - pb).matmul(g).matmul(pa);
        foreach (var solveX in new[] { false, true })
        {
            var (gA, gB, x) = LoraProMath.Adjust(a, b, gradA, gradB, s, inv, solveX);
            var eq = LoraProMath.EquivalentGradient(a, b, gA, gB, s);
            Assert.True((eq - projection).abs().max().item<double>() < 1e-10, $"solveX={solveX}");
            if (solveX)
            {
                // X solves (BᵀB)X + X(AAᵀ) = −(1/s²)(BᵀB)⁻¹ G_A Aᵀ.
                var btb = b.t().matmul(b);
                var lhs = btb.matmul(x) + x.matmul(a.matmul(a.t()));
                var rhs = torch.linalg.inv(btb).matmul(gradA).matmul(a.t()) * (-1 / (s * s));
                Assert.True((lhs - rhs).abs().max().item<double>() < 1e-10);
            }
        }
    }
}
