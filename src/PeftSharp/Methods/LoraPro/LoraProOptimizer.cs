using PeftSharp.Core;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraPro;

/// <summary>One adapted layer's factor pair as the optimizer sees it: A <c>[r, d_in]</c>, B <c>[d_out, r]</c> and the scale s.</summary>
public sealed record LoraProPair(NamedParameter A, NamedParameter B, double Scaling);

/// <summary>
/// LoRA-Pro's optimizer (the official "full" version, mrflogs/LoRA-Pro <c>lorapro_full_adjustment</c>), per (A, B) pair:
/// <list type="number">
/// <item>adjust (G_A, G_B) with X = 0 and form the equivalent gradient <c>g̃ = s·(B·g_A + g_B·A)</c> <c>[d_out, d_in]</c>;</item>
/// <item>Adam moments of full size on g̃ (fp32, bias-corrected with t = 1 on the first step): <c>ĝ = m̂ / (√v̂ + ε)</c>;</item>
/// <item>pull ĝ back to LoRA-gradient form <c>G_A' = s·Bᵀĝ</c>, <c>G_B' = s·ĝ·Aᵀ</c> and adjust again with the Sylvester X;</item>
/// <item>plain SGD: <c>A ← A − lr·g_A</c>, <c>B ← B − lr·g_B</c>. No weight decay (the official step has none).</item>
/// </list>
/// State per pair, under A's name: <c>exp_avg</c> and <c>exp_avg_sq</c> <c>[d_out, d_in]</c> and <c>step</c>, i.e.
/// 2·d_out·d_in floats per layer, as much as full fine-tuning's AdamW keeps (<see cref="StateBytes"/>).
/// </summary>
public sealed class LoraProOptimizer : TrainingOptimizer
{
    private const string StepField = "step";
    private const string ExpAvg = "exp_avg";
    private const string ExpAvgSq = "exp_avg_sq";

    private readonly List<LoraProPair> _pairs;
    private readonly ParameterGroup _group;
    private readonly Dictionary<Parameter, ParameterState> _state = new(ReferenceEqualityComparer.Instance);

    /// <param name="pairs">The (A, B) pairs this optimizer updates; no parameter may appear twice.</param>
    /// <param name="pinvDelta">δ of <c>pinv(M + δI)</c>.</param>
    /// <param name="beta1">Adam β1.</param>
    /// <param name="beta2">Adam β2.</param>
    /// <param name="eps">Adam ε.</param>
    public LoraProOptimizer(IEnumerable<LoraProPair> pairs, double pinvDelta = 1e-8, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        _pairs = [.. pairs];
        (PinvDelta, Beta1, Beta2, Eps) = (pinvDelta, beta1, beta2, eps);
        _group = new ParameterGroup("lorapro", _pairs.SelectMany(p => new[] { p.A, p.B }));
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var p in _group.Parameters)
        {
            if (!seen.Add(p.Parameter))
            {
                throw new PeftException($"LoRA-Pro: parameter '{p.Name}' is given to the optimizer twice");
            }
        }
    }

    public double PinvDelta { get; }

    public double Beta1 { get; }

    public double Beta2 { get; }

    public double Eps { get; }

    public IReadOnlyList<LoraProPair> Pairs => _pairs;

    public override IReadOnlyList<ParameterGroup> Groups => [_group];

    /// <summary>Bytes of optimizer state held now (the moments; the step counters are host integers).</summary>
    public long StateBytes => _state.Values.Sum(s => s.Tensors.Values.Sum(t => t.numel() * t.ElementSize));

    /// <summary>The state of the pair whose A is <paramref name="a"/>, or null before its first step.</summary>
    public ParameterState? StateOf(Parameter a) => _state.GetValueOrDefault(a);

    public override void Step(double learningRate)
    {
        using var noGrad = torch.no_grad();
        var lr = learningRate * _group.LearningRateScale;
        for (var i = 0; i < _pairs.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var pair = _pairs[i];
            var (a, b) = (pair.A.Parameter, pair.B.Parameter);
            if (a.grad is null && b.grad is null)
            {
                continue;
            }
            if (!_state.TryGetValue(a, out var state))
            {
                state = new ParameterState();
                _state[a] = state;
            }
            var (stepA, stepB) = Update(pair, state);
            a.add_(stepA.to_type(a.dtype), alpha: -lr);
            b.add_(stepB.to_type(b.dtype), alpha: -lr);
        }
    }

    // Steps 1–4 of the class summary: the final (g_A, g_B) of one pair, in the compute dtype.
    private (Tensor GradA, Tensor GradB) Update(LoraProPair pair, ParameterState state)
    {
        var compute = pair.A.Parameter.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var a = pair.A.Parameter.detach().to_type(compute);
        var b = pair.B.Parameter.detach().to_type(compute);
        var gradA = pair.A.Parameter.grad?.to_type(compute) ?? torch.zeros_like(a);
        var gradB = pair.B.Parameter.grad?.to_type(compute) ?? torch.zeros_like(b);
        var s = pair.Scaling;

        var inv = LoraProMath.Invert(a, b, PinvDelta);
        var (gA, gB, _) = LoraProMath.Adjust(a, b, gradA, gradB, s, inv, solveX: false);
        var equivalent = LoraProMath.EquivalentGradient(a, b, gA, gB, s);

        if (!state.Tensors.TryGetValue(ExpAvg, out var m))
        {
            m = state.Set(ExpAvg, torch.zeros_like(equivalent));
        }
        if (!state.Tensors.TryGetValue(ExpAvgSq, out var v))
        {
            v = state.Set(ExpAvgSq, torch.zeros_like(equivalent));
        }
        state.Step++;
        m.mul_(Beta1).add_(equivalent, alpha: 1 - Beta1);
        v.mul_(Beta2).addcmul_(equivalent, equivalent, value: 1 - Beta2);
        var biasCorrection1 = 1 - Math.Pow(Beta1, state.Step);
        var biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, state.Step));
        var adam = (m / biasCorrection1) / (v.sqrt() / biasCorrection2Sqrt).add_(Eps);

        var pulledA = b.t().matmul(adam) * s;
        var pulledB = adam.matmul(a.t()) * s;
        var (finalA, finalB, _) = LoraProMath.Adjust(a, b, pulledA, pulledB, s, inv, solveX: true);
        return (finalA, finalB);
    }

    public override void RebuildState(Parameter old, Parameter replacement, StateMap? map = null)
    {
        var i = _pairs.FindIndex(p => ReferenceEquals(p.A.Parameter, old) || ReferenceEquals(p.B.Parameter, old));
        if (i < 0)
        {
            throw new PeftException("RebuildState: the old parameter is not one LoRA-Pro updates");
        }
        var pair = _pairs[i];
        var isA = ReferenceEquals(pair.A.Parameter, old);
        _pairs[i] = isA ? pair with { A = pair.A with { Parameter = replacement } } : pair with { B = pair.B with { Parameter = replacement } };
        _group.Replace(old, replacement);
        // The moments live in the weight's [d_out, d_in] space, not in A's or B's: a rank change keeps them valid.
        if (isA && _state.Remove(old, out var state))
        {
            if (replacement.shape[1] == old.shape[1])
            {
                _state[replacement] = state;
            }
            else
            {
                state.Dispose();
            }
        }
    }

    public override void ResetState(Parameter parameter)
    {
        var pair = _pairs.FirstOrDefault(p => ReferenceEquals(p.A.Parameter, parameter) || ReferenceEquals(p.B.Parameter, parameter));
        if (pair is not null && _state.Remove(pair.A.Parameter, out var state))
        {
            state.Dispose();
        }
    }

    public override IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var pair in _pairs)
        {
            if (_state.TryGetValue(pair.A.Parameter, out var state))
            {
                result[pair.A.Name + "/" + StepField] = torch.tensor(state.Step);
                foreach (var (field, t) in state.Tensors)
                {
                    result[pair.A.Name + "/" + field] = t;
                }
            }
        }
        return result;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        var byName = _pairs.ToDictionary(p => p.A.Name, StringComparer.Ordinal);
        var parsed = new Dictionary<string, ParameterState>(StringComparer.Ordinal);
        try
        {
            foreach (var (key, tensor) in state)
            {
                var slash = key.LastIndexOf('/');
                var name = slash > 0 ? key[..slash] : throw new ModelMismatchException($"{source}: optimizer state key '{key}' is not '<parameter>/<field>'");
                var field = key[(slash + 1)..];
                if (!byName.TryGetValue(name, out var pair))
                {
                    throw new ModelMismatchException($"{source}: LoRA-Pro state for '{name}', which is not the lora_A of a pair this optimizer updates");
                }
                if (!parsed.TryGetValue(name, out var ps))
                {
                    ps = new ParameterState();
                    parsed[name] = ps;
                }
                if (field == StepField)
                {
                    ps.Step = tensor.numel() == 1 ? tensor.item<long>()
                        : throw new ModelMismatchException($"{source}: '{key}' must be a scalar, got shape [{string.Join(", ", tensor.shape)}]");
                    continue;
                }
                if (field is not (ExpAvg or ExpAvgSq))
                {
                    throw new ModelMismatchException($"{source}: '{key}': LoRA-Pro keeps only {ExpAvg} and {ExpAvgSq}");
                }
                long[] expected = [pair.B.Parameter.shape[0], pair.A.Parameter.shape[1]];
                if (!tensor.shape.SequenceEqual(expected))
                {
                    throw new ModelMismatchException(
                        $"{source}: LoRA-Pro state '{key}' is [{string.Join(", ", tensor.shape)}] but the layer's weight is [{string.Join(", ", expected)}]");
                }
                ps.Set(field, tensor.to(pair.A.Parameter.device).clone());
            }
        }
        catch
        {
            foreach (var ps in parsed.Values)
            {
                ps.Dispose();
            }
            throw;
        }
        foreach (var s in _state.Values)
        {
            s.Dispose();
        }
        _state.Clear();
        foreach (var (name, ps) in parsed)
        {
            _state[byName[name].A.Parameter] = ps;
        }
    }

    public override void Dispose()
    {
        foreach (var s in _state.Values)
        {
            s.Dispose();
        }
        _state.Clear();
        base.Dispose();
    }
}
