using static TorchSharp.torch;

namespace PeftSharp.Training.Optim;

/// <summary>SGD hyperparameters, with torch's defaults (<c>torch.optim.SGD</c>): no momentum, no decay.</summary>
public sealed record SgdOptions
{
    public double Momentum { get; init; }

    public double Dampening { get; init; }

    /// <summary>Nesterov momentum; needs Momentum &gt; 0 and Dampening = 0 (as torch).</summary>
    public bool Nesterov { get; init; }

    /// <summary>L2 penalty added to the gradient (coupled, as torch's SGD).</summary>
    public double WeightDecay { get; init; }

    public void Validate()
    {
        if (Momentum < 0 || Dampening < 0 || WeightDecay < 0)
        {
            throw new ConfigException($"SGD momentum, dampening and weight_decay must be >= 0, got {Momentum}, {Dampening}, {WeightDecay}");
        }
        if (Nesterov && (Momentum <= 0 || Dampening != 0))
        {
            throw new ConfigException($"SGD nesterov requires momentum > 0 and dampening = 0, got momentum={Momentum}, dampening={Dampening}");
        }
    }
}

/// <summary>
/// SGD as torch 1.13's <c>_single_tensor_sgd</c>: <c>d = g + λ·p</c>; with momentum μ the buffer starts as <c>d</c> and
/// then follows <c>b ← μ·b + (1 − dampening)·d</c>; the step uses <c>d + μ·b</c> (Nesterov) or <c>b</c>; <c>p ← p − lr·d</c>.
/// State per parameter: <c>momentum_buffer</c> (only with momentum) and <c>step</c>.
/// </summary>
public sealed class SgdOptimizer : PerParameterOptimizer
{
    public SgdOptimizer(IEnumerable<ParameterGroup> groups, SgdOptions? options = null) : base(groups)
    {
        Options = options ?? new SgdOptions();
        Options.Validate();
    }

    /// <summary>SGD over <paramref name="parameters"/> in one group with the options' weight decay.</summary>
    public static SgdOptimizer Create(IEnumerable<NamedParameter> parameters, SgdOptions? options = null)
    {
        options ??= new SgdOptions();
        return new SgdOptimizer(ParameterGroups.Single(parameters, options.WeightDecay), options);
    }

    public SgdOptions Options { get; }

    protected override void Update(NamedParameter parameter, Tensor grad, ParameterState state, ParameterGroup group, double learningRate)
    {
        var p = parameter.Parameter;
        var d = group.WeightDecay != 0 ? grad.add(p, alpha: group.WeightDecay) : grad;
        var mu = Options.Momentum;
        if (mu != 0)
        {
            if (!state.Tensors.TryGetValue("momentum_buffer", out var buffer))
            {
                buffer = state.Set("momentum_buffer", d.detach().clone());
            }
            else
            {
                buffer.mul_(mu).add_(d, alpha: 1 - Options.Dampening);
            }
            d = Options.Nesterov ? d.add(buffer, alpha: mu) : buffer;
        }
        state.Step++;
        p.add_(d, alpha: -learningRate);
    }
}
