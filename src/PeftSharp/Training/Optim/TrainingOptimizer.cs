using PeftSharp.IO.Safetensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Training.Optim;

/// <summary>
/// Maps one state tensor of a parameter whose shape changed (e.g. slicing Adam moments to the kept ranks) to the state
/// tensor of the replacement. <paramref name="field"/> is the state's name (<c>exp_avg</c>, <c>momentum_buffer</c>, …).
/// The result is owned by the optimizer; the input is disposed by it afterwards.
/// </summary>
public delegate Tensor StateMap(string field, Tensor oldState);

/// <summary>
/// An optimizer whose state can be read, rebuilt and saved per parameter, so that training hooks may change parameter
/// shapes mid-run (SoRA pruning, rank growth, GaLore refresh) and checkpoints can restore it exactly. TorchSharp's own
/// optimizers hide their state, hence these.
/// </summary>
public abstract class TrainingOptimizer : IDisposable
{
    /// <summary>The parameter groups (each with its weight decay and relative learning rate).</summary>
    public abstract IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>Every parameter this optimizer updates.</summary>
    public IEnumerable<NamedParameter> Parameters => Groups.SelectMany(g => g.Parameters);

    /// <summary>Whether <paramref name="parameter"/> is updated by this optimizer.</summary>
    public bool Owns(Parameter parameter) => Parameters.Any(p => ReferenceEquals(p.Parameter, parameter));

    /// <summary>
    /// One update of every parameter that has a gradient, at the scheduled <paramref name="learningRate"/> (times each
    /// group's scale). Parameters without a gradient are skipped and their state is untouched, as in torch.
    /// </summary>
    public abstract void Step(double learningRate);

    /// <summary>
    /// Points the optimizer at <paramref name="replacement"/> instead of <paramref name="old"/> (same name and group) and
    /// rebuilds its state: each state tensor goes through <paramref name="map"/> when given; without a map it is kept
    /// when the shape is unchanged and reset (as if never stepped) when the shape changed.
    /// </summary>
    public abstract void RebuildState(Parameter old, Parameter replacement, StateMap? map = null);

    /// <summary>Drops the state of <paramref name="parameter"/>; its next step starts afresh (step count 0).</summary>
    public abstract void ResetState(Parameter parameter);

    /// <summary>
    /// The state as named tensors: <c>&lt;parameter name&gt;/&lt;field&gt;</c> (e.g. <c>…lora_A.default.weight/exp_avg</c>, and
    /// <c>…/step</c> as a 0-d int64). The tensors are the live state (or fresh scalars): read them, do not dispose them.
    /// </summary>
    public abstract IReadOnlyDictionary<string, Tensor> StateDict();

    /// <summary>
    /// Replaces the whole state with <paramref name="state"/> (as <see cref="StateDict"/> produced it). Every key must name
    /// a parameter of this optimizer with the right shape; otherwise nothing changes and a <see cref="ModelMismatchException"/>
    /// names the key. Values are copied.
    /// </summary>
    public abstract void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, string source);

    /// <summary>Sets every parameter's gradient to none (torch's <c>zero_grad(set_to_none=True)</c>), freeing the memory.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters)
        {
            p.Parameter.grad = null;
        }
    }

    /// <summary>Writes the state to a safetensors file (atomically).</summary>
    public void Save(string path)
    {
        using var scope = torch.NewDisposeScope();
        var state = StateDict();
        SafetensorsWriter.Save(path, state, new Dictionary<string, string> { ["format"] = "peftsharp-optimizer", ["type"] = GetType().Name });
    }

    /// <summary>Reads a state written by <see cref="Save"/> into this optimizer (same parameters, same shapes).</summary>
    public void Load(string path)
    {
        using var scope = torch.NewDisposeScope();
        using var file = SafetensorsFile.Open(path);
        if (file.Metadata.TryGetValue("type", out var type) && type != GetType().Name)
        {
            throw new ModelMismatchException($"{path}: optimizer state of a {type}, but the optimizer is a {GetType().Name}");
        }
        var tensors = file.Entries.ToDictionary(e => e.Name, e => file.Read(e.Name), StringComparer.Ordinal);
        LoadStateDict(tensors, path);
    }

    public virtual void Dispose()
    {
        GC.SuppressFinalize(this);
    }
}
