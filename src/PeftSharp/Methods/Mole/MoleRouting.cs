using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Mole;

/// <summary>
/// One MoLE adapter's routing state across the model: an MLP group per layer prefix and the recorder of router
/// probabilities the load-balancing loss reads. Created once per added adapter (<see cref="MoleMethod.PrepareAdapter"/>).
/// </summary>
internal sealed class MolePlan
{
    private readonly Dictionary<string, MoleGroup> _groups = new(StringComparer.Ordinal);

    /// <summary>The MLP groups by layer prefix, in model order.</summary>
    public IReadOnlyCollection<MoleGroup> Groups => _groups.Values;

    /// <summary>Router probabilities recorded during a training forward.</summary>
    public RoutingRecorder Recorder { get; } = new();

    /// <summary>Puts <paramref name="moduleName"/> in the group <paramref name="key"/>; the group's first module owns the router.</summary>
    public MoleMembership Join(string key, string moduleName)
    {
        if (!_groups.TryGetValue(key, out var group))
        {
            group = new MoleGroup(key, moduleName);
            _groups[key] = group;
        }
        return new MoleMembership(group, group.Owner == moduleName, this);
    }
}

/// <summary>A module's place in its MLP: the shared group, and whether it owns (computes) the routing.</summary>
internal sealed record MoleMembership(MoleGroup Group, bool IsOwner, MolePlan Plan);

/// <summary>
/// One MLP: the routing its owner (the first expert module, which sees the MLP input) computed in the latest forward,
/// reused by the MLP's other expert modules. The tensors are held outside any dispose scope (a module's own scope ends
/// before the next projection runs) and replaced at the next forward.
/// </summary>
internal sealed class MoleGroup(string key, string owner) : IDisposable
{
    private Tensor? _probabilities;
    private Tensor? _expert;

    /// <summary>The MLP's layer prefix (e.g. <c>model.layers.0</c>).</summary>
    public string Key { get; } = key;

    /// <summary>The qualified name of the module that owns the router.</summary>
    public string Owner { get; } = owner;

    /// <summary>Router softmax of the latest forward, <c>[N, K]</c> float32 (N = tokens).</summary>
    public Tensor Probabilities => _probabilities ?? throw new PeftException($"MoLE MLP '{Key}': no routing yet; its router module '{Owner}' must run before the MLP's other projections");

    /// <summary>Chosen expert per token of the latest forward, <c>[N]</c> int64.</summary>
    public Tensor Expert => _expert ?? throw new PeftException($"MoLE MLP '{Key}': no routing yet; its router module '{Owner}' must run before the MLP's other projections");

    /// <summary>Replaces the routing (the tensors are taken out of the caller's dispose scope; the old ones are disposed).</summary>
    public void Set(Tensor probabilities, Tensor expert)
    {
        Dispose();
        _probabilities = probabilities.DetachFromDisposeScope();
        _expert = expert.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        _probabilities?.Dispose();
        _expert?.Dispose();
        _probabilities = null;
        _expert = null;
    }
}

/// <summary>Collects each MLP's router probabilities (with their graph) while armed, for the balancing loss.</summary>
internal sealed class RoutingRecorder
{
    private readonly List<Tensor> _recorded = [];

    public bool Armed { get; private set; }

    public IReadOnlyList<Tensor> Recorded => _recorded;

    /// <summary>Drops what was recorded and starts recording.</summary>
    public void Start()
    {
        Clear();
        Armed = true;
    }

    /// <summary>Stops recording; the recorded tensors stay until <see cref="Clear"/>.</summary>
    public void Stop() => Armed = false;

    /// <summary>Keeps an alias of <paramref name="probabilities"/> (<c>[.., K]</c>) outside the dispose scopes.</summary>
    public void Add(Tensor probabilities)
    {
        if (Armed)
        {
            _recorded.Add(probabilities.alias().DetachFromDisposeScope());
        }
    }

    public void Clear()
    {
        foreach (var t in _recorded)
        {
            t.Dispose();
        }
        _recorded.Clear();
    }
}
