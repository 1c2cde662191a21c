using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Sora;

/// <summary>The proximal (thresholding) operators of SoRA's gate update and the sparsifying schedule of ξ (reference §7).</summary>
public static class SoraThreshold
{
    /// <summary><c>threshold_form</c> value of the official sequential operator.</summary>
    public const string Official = "official";

    /// <summary><c>threshold_form</c> value of textbook soft-thresholding.</summary>
    public const string Soft = "soft";

    /// <summary>Textbook soft-thresholding <c>T_ξ(v) = sign(v)·max(|v| − ξ, 0)</c>; zeros come out as +0 exactly.</summary>
    public static Tensor SoftThreshold(Tensor v, double xi)
    {
        using var scope = torch.NewDisposeScope();
        var shrunk = v - v.sign() * xi;
        return torch.where(v.abs() > xi, shrunk, torch.zeros_like(v)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The official <c>SparseAdamW</c> operator (TsinghuaC3I/SoRA <c>src/sparse_optimizer.py</c>): subtract ξ from entries
    /// &gt; ξ, add ξ to entries &lt; −ξ, then zero entries with |v| &lt; ξ measured after the shift. So
    /// <c>T_off(v) = 0</c> for |v| &lt; 2ξ (except |v| = ξ exactly, left unchanged) and <c>v − sign(v)·ξ</c> otherwise.
    /// </summary>
    public static Tensor OfficialThreshold(Tensor v, double xi)
    {
        using var scope = torch.NewDisposeScope();
        var shifted = torch.where(v > xi, v - xi, v);
        shifted = torch.where(shifted < -xi, shifted + xi, shifted);
        return torch.where(shifted.abs() < xi, torch.zeros_like(v), shifted).MoveToOuterDisposeScope();
    }

    /// <summary>Applies the operator named by <paramref name="form"/> (<see cref="Official"/> or <see cref="Soft"/>).</summary>
    public static Tensor Apply(string form, Tensor v, double xi) => form == Soft ? SoftThreshold(v, xi) : OfficialThreshold(v, xi);

    /// <summary>
    /// ξ at 0-based optimizer step <paramref name="step"/>: <c>sparse_lambda_2</c> without a schedule; otherwise value
    /// k = min(step / lambda_stage_steps, lambda_num − 1) of the official list: linear <c>linspace(ξ₀, max, n)</c>,
    /// log_linear <c>log(linspace(e^ξ₀, e^max, n))</c>, exp_linear <c>exp(linspace(log ξ₀, log max, n))</c>.
    /// </summary>
    public static double Xi(SoraConfig config, long step)
    {
        if (config.LambdaSchedule is null)
        {
            return config.SparseLambda2;
        }
        var n = config.LambdaNum!.Value;
        var k = (int)Math.Min(step / config.LambdaStageSteps!.Value, n - 1);
        var t = n == 1 ? 0.0 : (double)k / (n - 1);
        double Lerp(double a, double b) => a + (b - a) * t;
        var (start, end) = (config.SparseLambda2, config.MaxLambda!.Value);
        return config.LambdaSchedule switch
        {
            "linear" => Lerp(start, end),
            "log_linear" => Math.Log(Lerp(Math.Exp(start), Math.Exp(end))),
            _ => Math.Exp(Lerp(Math.Log(start), Math.Log(end))),
        };
    }
}
