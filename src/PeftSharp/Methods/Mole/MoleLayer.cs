using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Mole;

/// <summary>
/// A MoLE adapter on one Linear (or GPT-2 Conv1D). Outside an MLP it is plain LoRA: <c>base(x) + s·B·A·dropout(x)</c>
/// (<c>lora_A.&lt;adapter&gt;.weight</c>, <c>lora_B…</c>). On an MLP projection it holds K experts
/// (<c>experts.&lt;adapter&gt;.&lt;k&gt;.lora_A.weight</c>) and adds, per token, the expert(s) its MLP's router chose:
/// sparse <c>s·B_k*·A_k*·x</c>, switch <c>p_k*·s·B_k*·A_k*·x</c>, dense <c>Σ_k p_k·s·B_k·A_k·x</c>. The MLP's first expert
/// module also holds the router (<c>router.&lt;adapter&gt;</c>, Linear(d, K) with bias, PyTorch's default init) and computes
/// the routing from its input, the MLP input; the MLP's other projections reuse it.
/// </summary>
public sealed class MoleLayer : AdapterLayer
{
    private readonly AdapterModuleDict _loraA = new();
    private readonly AdapterModuleDict _loraB = new();
    private readonly AdapterModuleDict _experts = new();
    private readonly AdapterModuleDict _router = new();
    private readonly AdapterModuleDict _dropout = new();
    private readonly Dictionary<string, MoleConfig> _configs = [];

    public MoleLayer(BaseLayer baseLayer) : base(nameof(MoleLayer), baseLayer)
    {
        register_module("lora_dropout", _dropout);
        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
        register_module("experts", _experts);
        register_module("router", _router);
    }

    public override string PeftType => MoleConfig.Type;

    /// <summary>Whether this layer carries experts for <paramref name="adapterName"/> (false: plain LoRA).</summary>
    public bool HasExperts(string adapterName) => _configs[adapterName].Membership is not null;

    /// <summary>Whether this layer holds the router of its MLP for <paramref name="adapterName"/>.</summary>
    public bool OwnsRouter(string adapterName) => _configs[adapterName].Membership?.IsOwner == true;

    /// <summary>The MLP group key (e.g. <c>model.layers.0</c>), or null for a plain-LoRA layer.</summary>
    public string? GroupOf(string adapterName) => _configs[adapterName].Membership?.Group.Key;

    /// <summary>The router (Linear d → K with bias) when this layer owns it.</summary>
    public Linear? RouterOf(string adapterName) => _router.Contains(adapterName) ? (Linear)_router[adapterName] : null;

    /// <summary>The K experts when this layer carries them.</summary>
    public MoleExperts? ExpertsOf(string adapterName) => _experts.Contains(adapterName) ? (MoleExperts)_experts[adapterName] : null;

    internal MolePlan? PlanOf(string adapterName) => _configs.TryGetValue(adapterName, out var c) ? c.Membership?.Plan : null;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (MoleConfig)config;
        var device = Base.Device;
        var dtype = Base.DType;
        if (c.Membership is { } member)
        {
            _experts.Set(adapterName, new MoleExperts(c.NumExperts, Base.InFeatures, Base.OutFeatures, c.Rank, device, dtype));
            if (member.IsOwner)
            {
                // PyTorch's default Linear init (Kaiming-uniform a = √5, bias U(±1/√d)): a zero router ties every logit
                // and argmax would send every token to expert 0.
                _router.Set(adapterName, nn.Linear(Base.InFeatures, c.NumExperts, hasBias: true, device: device, dtype: dtype));
            }
        }
        else
        {
            var a = nn.Linear(Base.InFeatures, c.Rank, hasBias: false, device: device, dtype: dtype);
            var b = nn.Linear(c.Rank, Base.OutFeatures, hasBias: false, device: device, dtype: dtype);
            Lora.LoraInit.Standard(a.weight!, b.weight!, Lora.InitLoraWeights.Default, c.Rank);
            _loraA.Set(adapterName, a);
            _loraB.Set(adapterName, b);
        }
        _dropout.Set(adapterName, c.Dropout > 0 ? nn.Dropout(c.Dropout) : nn.Identity());
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        if (_configs.Remove(adapterName, out var c) && c.Membership is { IsOwner: true } member)
        {
            member.Group.Dispose();
        }
        _loraA.Remove(adapterName);
        _loraB.Remove(adapterName);
        _experts.Remove(adapterName);
        _router.Remove(adapterName);
        _dropout.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var c = _configs[adapterName];
        var input = x.dtype == Base.DType ? x : x.to(Base.DType);
        var dropped = c.Dropout > 0 ? _dropout[adapterName].call(input) : input;
        if (c.Membership is not { } member)
        {
            return result + _loraB[adapterName].call(_loraA[adapterName].call(dropped)) * c.Scaling;
        }
        var tokens = x.shape[..^1];
        if (member.IsOwner)
        {
            Route(adapterName, c, member, input);
        }
        var probabilities = member.Group.Probabilities;
        var expert = member.Group.Expert;
        var count = tokens.Aggregate(1L, (a, b) => a * b);
        if (expert.shape[0] != count)
        {
            throw new PeftException(
                $"MoLE MLP '{member.Group.Key}': the routing covers {expert.shape[0]} tokens but this projection got {count}; " +
                $"its router module '{member.Group.Owner}' must see the same tokens first");
        }
        var flat = dropped.reshape(-1, Base.InFeatures);
        var experts = (MoleExperts)_experts[adapterName];
        var delta = c.Routing == MoleConfig.Dense
            ? DenseMixture(experts, flat, probabilities.to(flat.dtype))
            : TopOne(experts, flat, expert, c.Routing == MoleConfig.Switch ? probabilities.to(flat.dtype) : null);
        return result + (delta * c.Scaling).reshape(result.shape);
    }

    // The router's softmax in float32 and the top-1 expert per token, shared with the MLP's other projections; the
    // probabilities are also recorded for the balancing loss while the trainer asks for them.
    private void Route(string adapterName, MoleConfig c, MoleMembership member, Tensor input)
    {
        var logits = _router[adapterName].call(input).to(ScalarType.Float32);
        var probabilities = nn.functional.softmax(logits, -1);
        member.Plan.Recorder.Add(probabilities);
        var flat = probabilities.reshape(-1, c.NumExperts);
        member.Group.Set(flat, flat.argmax(-1));
    }

    /// <summary>
    /// Sparse path (gather/scatter): each expert runs only on its tokens, <c>[n_k, d_in]</c>, and its output is
    /// scattered back; with <paramref name="weights"/> (switch) each token's delta is scaled by its chosen probability.
    /// </summary>
    internal static Tensor TopOne(MoleExperts experts, Tensor flat, Tensor expert, Tensor? weights)
    {
        Tensor? delta = null;
        for (var k = 0; k < experts.Count; k++)
        {
            var rows = torch.nonzero(expert.eq(k)).reshape(-1);
            if (rows.shape[0] == 0)
            {
                continue;
            }
            var y = experts[k].call(flat.index_select(0, rows));
            if (weights is not null)
            {
                y = y * weights.index_select(0, rows)[.., k..(k + 1)];
            }
            delta = (delta ?? torch.zeros([flat.shape[0], y.shape[1]], dtype: y.dtype, device: y.device)).index_add(0, rows, y, 1);
        }
        return delta ?? torch.zeros([flat.shape[0], experts[0].B.shape[0]], dtype: flat.dtype, device: flat.device);
    }

    /// <summary>Dense path: every expert on every token, mixed by the router's probabilities <c>[N, K]</c>.</summary>
    internal static Tensor DenseMixture(MoleExperts experts, Tensor flat, Tensor weights)
    {
        Tensor? delta = null;
        for (var k = 0; k < experts.Count; k++)
        {
            var y = experts[k].call(flat) * weights[.., k..(k + 1)];
            delta = delta is null ? y : delta + y;
        }
        return delta!;
    }

    /// <summary>None: the routing depends on the token, so no single ΔW exists.</summary>
    public override Tensor? DeltaWeight(string adapterName) => null;

    protected override void MergeInto(string adapterName) => throw CannotMerge();

    protected override void UnmergeFrom(string adapterName) => throw CannotMerge();

    private static PeftException CannotMerge() => new(
        "MoLE adapters cannot be merged: each token picks its own expert, so no single weight update exists (keep the adapter unmerged)");

    /// <summary>
    /// Saved keys, relative to the module: plain layers <c>lora_A.weight</c>, <c>lora_B.weight</c>; expert layers
    /// <c>experts.&lt;k&gt;.lora_A.weight</c>, <c>experts.&lt;k&gt;.lora_B.weight</c> for k = 0 … K−1, plus
    /// <c>router.weight</c> <c>[K, d]</c> and <c>router.bias</c> <c>[K]</c> on the MLP's router module.
    /// </summary>
    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        if (ExpertsOf(adapterName) is { } experts)
        {
            for (var k = 0; k < experts.Count; k++)
            {
                tensors[$"experts.{k}.lora_A.weight"] = experts[k].A;
                tensors[$"experts.{k}.lora_B.weight"] = experts[k].B;
            }
            if (RouterOf(adapterName) is { } router)
            {
                tensors["router.weight"] = router.weight!;
                tensors["router.bias"] = router.bias!;
            }
        }
        else
        {
            tensors["lora_A.weight"] = ((Linear)_loraA[adapterName]).weight!;
            tensors["lora_B.weight"] = ((Linear)_loraB[adapterName]).weight!;
        }
        return tensors;
    }
}
