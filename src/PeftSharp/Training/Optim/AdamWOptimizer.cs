using static TorchSharp.torch;

namespace PeftSharp.Training.Optim;

/// <summary>AdamW hyperparameters, with torch's defaults (<c>torch.optim.AdamW</c>).</summary>
public sealed record AdamWOptions
{
    public double Beta1 { get; init; } = 0.9;

    public double Beta2 { get; init; } = 0.999;

    /// <summary>Added to √v̂ (after the bias correction), as torch does.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>Decoupled weight decay of the <c>decay</c> group (torch's default 1e-2). 1-D parameters get none by default.</summary>
    public double WeightDecay { get; init; } = 1e-2;

    public void Validate()
    {
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1)
        {
            throw new ConfigException($"AdamW betas must be in [0, 1), got ({Beta1}, {Beta2})");
        }
        if (Eps < 0 || WeightDecay < 0)
        {
            throw new ConfigException($"AdamW eps and weight_decay must be >= 0, got eps={Eps}, weight_decay={WeightDecay}");
        }
    }
}

/// <summary>
/// AdamW (Loshchilov &amp; Hutter, arXiv 1711.05101) step for step as torch 1.13's single-tensor <c>_single_tensor_adamw</c>:
/// <c>t += 1; p ← p·(1 − lr·λ); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
/// p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)</c>. The decay multiplies the weight before the Adam update, and ε
/// is added after the bias-corrected square root. State per parameter: <c>exp_avg</c>, <c>exp_avg_sq</c>, <c>step</c>.
/// </summary>
public sealed class AdamWOptimizer : PerParameterOptimizer
{
    public AdamWOptimizer(IEnumerable<ParameterGroup> groups, AdamWOptions? options = null) : base(groups)
    {
        Options = options ?? new AdamWOptions();
        Options.Validate();
    }

    /// <summary>AdamW over <paramref name="parameters"/>, split by <see cref="ParameterGroups.WithDecay"/> (no decay on 1-D tensors).</summary>
    public static AdamWOptimizer Create(IEnumerable<NamedParameter> parameters, AdamWOptions? options = null)
    {
        options ??= new AdamWOptions();
        return new AdamWOptimizer(ParameterGroups.WithDecay(parameters, options.WeightDecay), options);
    }

    public AdamWOptions Options { get; }

    protected override void Update(NamedParameter parameter, Tensor grad, ParameterState state, ParameterGroup group, double learningRate)
    {
        var p = parameter.Parameter;
        if (grad.is_sparse)
        {
            throw new PeftException($"AdamW: '{parameter.Name}' has a sparse gradient, which AdamW does not support");
        }
        if (!state.Tensors.TryGetValue("exp_avg", out var expAvg))
        {
            expAvg = state.Set("exp_avg", zeros_like(p));
        }
        if (!state.Tensors.TryGetValue("exp_avg_sq", out var expAvgSq))
        {
            expAvgSq = state.Set("exp_avg_sq", zeros_like(p));
        }
        state.Step++;
        var (b1, b2) = (Options.Beta1, Options.Beta2);

        p.mul_(1 - learningRate * group.WeightDecay);
        expAvg.mul_(b1).add_(grad, alpha: 1 - b1);
        expAvgSq.mul_(b2).addcmul_(grad, grad, value: 1 - b2);

        // Python floats in torch: the corrections are computed in double and enter as scalars.
        var biasCorrection1 = 1 - Math.Pow(b1, state.Step);
        var biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(b2, state.Step));
        var stepSize = learningRate / biasCorrection1;
        var denom = (expAvgSq.sqrt() / biasCorrection2Sqrt).add_(Options.Eps);
        p.addcdiv_(expAvg, denom, value: -stepSize);
    }
}
