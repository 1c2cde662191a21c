using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Training.Optim;

/// <summary>The state one parameter carries between steps: its own step count and named tensors.</summary>
public sealed class ParameterState : IDisposable
{
    /// <summary>Updates applied to this parameter so far (torch's <c>state['step']</c>).</summary>
    public long Step { get; set; }

    /// <summary>Shape of the parameter the state was built for (a replaced parameter may already be disposed).</summary>
    internal long[] ParameterShape { get; set; } = [];

    /// <summary>State tensors by field name (<c>exp_avg</c>, <c>exp_avg_sq</c>, <c>momentum_buffer</c>, …); owned here.</summary>
    public Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>Stores <paramref name="value"/> under <paramref name="field"/>, keeping it alive outside any dispose scope.</summary>
    public Tensor Set(string field, Tensor value)
    {
        if (Tensors.Remove(field, out var old) && !ReferenceEquals(old, value))
        {
            old.Dispose();
        }
        value.DetachFromDisposeScope();
        Tensors[field] = value;
        return value;
    }

    public void Dispose()
    {
        foreach (var t in Tensors.Values)
        {
            t.Dispose();
        }
        Tensors.Clear();
    }
}

/// <summary>
/// Base of optimizers whose state is one <see cref="ParameterState"/> per parameter (AdamW, SGD, and methods' own
/// optimizers such as GaLore's). Handles groups, state lookup by parameter identity, rebuild/reset and save/load;
/// a subclass writes only <see cref="Update"/>.
/// </summary>
public abstract class PerParameterOptimizer : TrainingOptimizer
{
    private const string StepField = "step";

    private readonly List<ParameterGroup> _groups;
    private readonly Dictionary<Parameter, ParameterState> _state = new(ReferenceEqualityComparer.Instance);

    protected PerParameterOptimizer(IEnumerable<ParameterGroup> groups)
    {
        _groups = [.. groups];
        var names = new HashSet<string>(StringComparer.Ordinal);
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var p in _groups.SelectMany(g => g.Parameters))
        {
            if (!names.Add(p.Name) || !seen.Add(p.Parameter))
            {
                throw new PeftException($"parameter '{p.Name}' is given to the optimizer twice");
            }
            if (p.Name.Contains('/'))
            {
                throw new PeftException($"parameter name '{p.Name}' contains '/', which the optimizer state uses as a separator");
            }
        }
    }

    public override IReadOnlyList<ParameterGroup> Groups => _groups;

    /// <summary>The state of <paramref name="parameter"/>, or null before its first step.</summary>
    public ParameterState? StateOf(Parameter parameter) => _state.GetValueOrDefault(parameter);

    public override void Step(double learningRate)
    {
        using var noGrad = torch.no_grad();
        foreach (var group in _groups)
        {
            var lr = learningRate * group.LearningRateScale;
            foreach (var p in group.Parameters)
            {
                using var scope = torch.NewDisposeScope();
                var grad = p.Parameter.grad;
                if (grad is null)
                {
                    continue;
                }
                if (!_state.TryGetValue(p.Parameter, out var state))
                {
                    state = new ParameterState { ParameterShape = p.Parameter.shape };
                    _state[p.Parameter] = state;
                }
                Update(p, grad, state, group, lr);
            }
        }
    }

    /// <summary>
    /// Updates one parameter in place (inside <c>no_grad</c> and a dispose scope). <paramref name="state"/> is empty on
    /// the first step; create its tensors with <see cref="ParameterState.Set"/>.
    /// </summary>
    protected abstract void Update(NamedParameter parameter, Tensor grad, ParameterState state, ParameterGroup group, double learningRate);

    public override void RebuildState(Parameter old, Parameter replacement, StateMap? map = null)
    {
        var group = _groups.FirstOrDefault(g => g.Parameters.Any(p => ReferenceEquals(p.Parameter, old)))
            ?? throw new PeftException("RebuildState: the old parameter is not one this optimizer updates");
        group.Replace(old, replacement);
        if (!_state.Remove(old, out var state))
        {
            return;
        }
        var sameShape = state.ParameterShape.SequenceEqual(replacement.shape);
        if (map is null && !sameShape)
        {
            state.Dispose();
            return;
        }
        if (map is not null)
        {
            using var noGrad = torch.no_grad();
            foreach (var field in state.Tensors.Keys.ToList())
            {
                using var scope = torch.NewDisposeScope();
                var mapped = map(field, state.Tensors[field]);
                state.Set(field, mapped.MoveToOuterDisposeScope());
            }
        }
        state.ParameterShape = replacement.shape;
        _state[replacement] = state;
    }

    public override void ResetState(Parameter parameter)
    {
        if (_state.Remove(parameter, out var state))
        {
            state.Dispose();
        }
    }

    public override IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var p in Parameters)
        {
            if (_state.TryGetValue(p.Parameter, out var state))
            {
                result[p.Name + "/" + StepField] = torch.tensor(state.Step);
                foreach (var (field, t) in state.Tensors)
                {
                    result[p.Name + "/" + field] = t;
                }
            }
        }
        return result;
    }

    public override void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        var byName = Parameters.ToDictionary(p => p.Name, p => p.Parameter, StringComparer.Ordinal);
        var parsed = new Dictionary<string, (long Step, Dictionary<string, Tensor> Fields)>(StringComparer.Ordinal);
        foreach (var (key, tensor) in state)
        {
            var slash = key.LastIndexOf('/');
            var name = slash > 0 ? key[..slash] : throw new ModelMismatchException($"{source}: optimizer state key '{key}' is not '<parameter>/<field>'");
            var field = key[(slash + 1)..];
            if (!byName.ContainsKey(name))
            {
                throw new ModelMismatchException($"{source}: optimizer state for '{name}', which this optimizer does not update");
            }
            if (!parsed.TryGetValue(name, out var entry))
            {
                entry = (0, new Dictionary<string, Tensor>(StringComparer.Ordinal));
                parsed[name] = entry;
            }
            if (field == StepField)
            {
                if (tensor.numel() != 1)
                {
                    throw new ModelMismatchException($"{source}: '{key}' must be a scalar, got shape [{string.Join(", ", tensor.shape)}]");
                }
                parsed[name] = (tensor.item<long>(), entry.Fields);
            }
            else
            {
                CheckField(name, field, tensor, byName[name], source);
                entry.Fields[field] = tensor;
            }
        }
        foreach (var s in _state.Values)
        {
            s.Dispose();
        }
        _state.Clear();
        foreach (var (name, (step, fields)) in parsed)
        {
            var target = byName[name];
            var ps = new ParameterState { Step = step, ParameterShape = target.shape };
            foreach (var (field, t) in fields)
            {
                ps.Set(field, t.to(target.device).clone());
            }
            _state[target] = ps;
        }
    }

    /// <summary>Rejects a loaded state tensor that cannot belong to <paramref name="parameter"/>; by default its shape must match.</summary>
    protected virtual void CheckField(string name, string field, Tensor value, Parameter parameter, string source)
    {
        if (!value.shape.SequenceEqual(parameter.shape))
        {
            throw new ModelMismatchException(
                $"{source}: optimizer state '{name}/{field}' is [{string.Join(", ", value.shape)}] but the parameter is [{string.Join(", ", parameter.shape)}]");
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
