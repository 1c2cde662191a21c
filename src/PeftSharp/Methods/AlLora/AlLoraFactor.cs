using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.AlLora;

/// <summary>
/// ALLoRA's adaptive gradient factor (reference §9): one factor per row θ_i of a stored factor matrix (a rank slot of
/// lora_A <c>[r, d_in]</c>, an output unit of lora_B <c>[d_out, r]</c>), <c>1/√(‖θ_i‖₂ᵖ + 1/η²)</c> with p = 2 (default) or 1.
/// It is at most η (a zero row) and decays like 1/‖θ_i‖ once the row grows, so B's rows leave zero quickly.
/// </summary>
public static class AlLoraFactor
{
    /// <summary>The factors <c>[rows]</c> of <paramref name="theta"/> <c>[rows, cols]</c>, in fp32 (fp64 for fp64 input).</summary>
    public static Tensor RowFactors(Tensor theta, double eta, bool squared)
    {
        using var scope = torch.NewDisposeScope();
        var t = theta.detach().to_type(theta.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32);
        var normPart = squared ? t.square().sum(1) : t.square().sum(1).sqrt();
        return (normPart + 1.0 / (eta * eta)).rsqrt().MoveToOuterDisposeScope();
    }

    /// <summary>Multiplies each row of <paramref name="grad"/> by its factor, in place.</summary>
    public static void ScaleRows(Tensor grad, Tensor factors)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        grad.mul_(factors.to_type(grad.dtype).unsqueeze(1));
    }
}
