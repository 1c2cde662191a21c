using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.GaLore;

/// <summary>
/// The module side of GaLore, which is an optimizer, not an adapter: each adapter is a trainable full copy of the base
/// weight (<c>galore_weight.&lt;adapter&gt;</c>, in the base weight's own layout), like PEFT's <c>modules_to_save</c> copy
/// of a head. The frozen original stays in <c>base_layer</c>, so disabling, unloading and deleting give the base model
/// back exactly. Forward with one active adapter is the base operation with the trained weight (one matmul); the
/// adapter's ΔW is <c>W_trained − W_base</c>. Saved as the full trained weight under the module's own name
/// (<c>base_model.model.&lt;module&gt;.weight</c>). The update rule lives in <see cref="GaLoreAdamW"/>.
/// </summary>
public sealed class GaLoreLayer : AdapterLayer
{
    private readonly AdapterParameterDict _weights = new();

    // The base weight before the first merge (merging overwrites it); not a registered tensor, never saved.
    private readonly MergeBackup _backup = new();

    public GaLoreLayer(BaseLayer baseLayer) : base(nameof(GaLoreLayer), baseLayer)
    {
        if (baseLayer.Kind is not (BaseLayerKind.Linear or BaseLayerKind.Conv1D))
        {
            throw new PeftException($"GaLore trains Linear and GPT-2 Conv1D weights, not a {baseLayer.Kind}");
        }
        register_module("galore_weight", _weights);
    }

    public override string PeftType => GaLoreConfig.Type;

    /// <summary>The trainable full weight of one adapter, in the base weight's layout ([out, in]; Conv1D [in, out]).</summary>
    public Parameter WeightOf(string adapterName) => _weights[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        _ = (GaLoreConfig)config;
        using var noGrad = torch.no_grad();
        _weights.Set(adapterName, new Parameter(Base.Weight.detach().clone()));
    }

    protected override void RemoveAdapter(string adapterName) => _weights.Remove(adapterName);

    public override Tensor forward(Tensor x)
    {
        // The training case (one active, unmerged adapter): the trained weight replaces the base one, bit for bit the
        // base layer's own operation, so the output at init equals the base output exactly.
        if (!Disabled && !IsMerged && RowAdapters is null && ActiveAdapters.Count == 1)
        {
            return Apply(x, _weights[ActiveAdapters[0]], Base.Bias);
        }
        return base.forward(x);
    }

    // Several active adapters (or some merged): each adds x·(W_a − W_base) to the base output.
    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        using var scope = torch.NewDisposeScope();
        var delta = _weights[adapterName] - Original;
        return (result + Apply(x, delta, null)).MoveToOuterDisposeScope();
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) =>
        new Dictionary<string, Tensor> { ["weight"] = _weights[adapterName] };

    public override Tensor? DeltaWeight(string adapterName)
    {
        using var scope = torch.NewDisposeScope();
        var delta = _weights[adapterName].detach() - Original;
        return (Base.FanInFanOut ? delta.t() : delta).MoveToOuterDisposeScope();
    }

    // The first merge copies the trained weight in (exact); further merges add their ΔW. Unmerging the last one restores
    // the saved base weight exactly.
    protected override void MergeInto(string adapterName)
    {
        using var noGrad = torch.no_grad();
        if (MergedAdapters.Count == 0)
        {
            _backup.Weight = Base.Weight.detach().clone().DetachFromDisposeScope();
            Base.Weight.copy_(_weights[adapterName]);
            return;
        }
        using var scope = torch.NewDisposeScope();
        Base.Weight.add_(_weights[adapterName] - _backup.Weight!);
    }

    protected override void UnmergeFrom(string adapterName)
    {
        using var noGrad = torch.no_grad();
        var original = _backup.Weight ?? throw new PeftException($"GaLore adapter '{adapterName}' is not merged");
        if (MergedAdapters.Count == 1)
        {
            Base.Weight.copy_(original);
            original.Dispose();
            _backup.Weight = null;
            return;
        }
        using var scope = torch.NewDisposeScope();
        Base.Weight.sub_(_weights[adapterName] - original);
    }

    private Tensor Original => _backup.Weight ?? Base.Weight.detach();

    private Tensor Apply(Tensor x, Tensor weight, Tensor? bias)
    {
        if (Base.Kind == BaseLayerKind.Linear)
        {
            return nn.functional.linear(x, weight, bias);
        }
        // GPT-2 Conv1D: y = x·W + b with W [in, out], computed as its own forward does.
        using var scope = torch.NewDisposeScope();
        long[] outShape = [.. x.shape[..^1], Base.OutFeatures];
        var flat = x.reshape(-1, Base.InFeatures);
        var y = bias is null ? torch.matmul(flat, weight) : torch.addmm(bias, flat, weight, 1, 1);
        return y.view(outShape).MoveToOuterDisposeScope();
    }

    private sealed class MergeBackup
    {
        public Tensor? Weight { get; set; }
    }
}
