using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Training.Optim;

/// <summary>
/// Several optimizers over disjoint parameters acting as one: a method's own optimizer (GaLore, LoRA-Pro) for the
/// parameters it claims and the default optimizer for the rest. State keys stay per parameter, so they do not collide.
/// </summary>
public sealed class CompositeOptimizer : TrainingOptimizer
{
    private readonly List<TrainingOptimizer> _parts;

    public CompositeOptimizer(IEnumerable<TrainingOptimizer> parts)
    {
        _parts = [.. parts];
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var p in _parts.SelectMany(o => o.Parameters))
        {
            if (!seen.Add(p.Parameter))
            {
                throw new PeftException($"parameter '{p.Name}' is claimed by two optimizers");
            }
        }
    }

    /// <summary>The optimizers, in step order.</summary>
    public IReadOnlyList<TrainingOptimizer> Parts => _parts;

    public override IReadOnlyList<ParameterGroup> Groups => [.. _parts.SelectMany(o => o.Groups)];

    public override void Step(double learningRate)
    {
        foreach (var o in _parts)
        {
            o.Step(learningRate);
        }
    }

    public override void RebuildState(Parameter old, Parameter replacement, StateMap? map = null) =>
        OwnerOf(old).RebuildState(old, replacement, map);

    public override void ResetState(Parameter parameter) => OwnerOf(parameter).ResetState(parameter);

    public override IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var o in _parts)
        {
            foreach (var (k, v) in o.StateDict())
            {
                result.Add(k, v);
            }
        }
        return result;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        var owners = _parts.SelectMany(o => o.Parameters.Select(p => (p.Name, Owner: o))).ToDictionary(x => x.Name, x => x.Owner, StringComparer.Ordinal);
        var split = _parts.ToDictionary(o => o, _ => new Dictionary<string, Tensor>(StringComparer.Ordinal));
        foreach (var (key, value) in state)
        {
            var slash = key.LastIndexOf('/');
            var name = slash > 0 ? key[..slash] : key;
            if (!owners.TryGetValue(name, out var owner))
            {
                throw new ModelMismatchException($"{source}: optimizer state for '{name}', which no optimizer updates");
            }
            split[owner][key] = value;
        }
        foreach (var o in _parts)
        {
            o.LoadStateDict(split[o], source);
        }
    }

    private TrainingOptimizer OwnerOf(Parameter p) =>
        _parts.FirstOrDefault(o => o.Owns(p)) ?? throw new PeftException("the parameter is not one any optimizer updates");

    public override void Dispose()
    {
        foreach (var o in _parts)
        {
            o.Dispose();
        }
        base.Dispose();
    }
}
