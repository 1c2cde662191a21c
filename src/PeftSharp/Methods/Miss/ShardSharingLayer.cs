using PeftSharp.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Miss;

/// <summary>
/// The layer MiSS and Bone share: one trainable block per adapter, registered under PEFT's in-memory name
/// (<c>miss_block.&lt;adapter&gt;</c> or <c>bone_block.&lt;adapter&gt;</c>) and saved as <c>miss_block</c> / <c>bone_block</c>.
/// The variant is chosen per adapter by <c>init_weights</c> (PEFT decides it once per layer, from the first adapter).
/// Balance and mini add <c>Σₖ xₖ · D</c> to the base output; bat adds <c>x · ΔWᵀ</c> with <c>ΔW = W·b + b</c> block-wise, where
/// W is the base weight after the earlier active adapters of this layer (PEFT applies bat adapters one after another).
/// </summary>
public abstract class ShardSharingLayer : AdapterLayer
{
    private readonly string _blockKey;
    private readonly AdapterParameterDict _blocks = new();
    private readonly AdapterModuleDict? _dropout;
    private readonly Dictionary<string, ShardSharingConfig> _configs = [];

    /// <param name="name">Module name.</param>
    /// <param name="baseLayer">The wrapped Linear.</param>
    /// <param name="blockKey">PEFT's name of the block (<c>miss_block</c>, <c>bone_block</c>).</param>
    /// <param name="dropoutKey">PEFT's name of the dropout dict, or null when the method has no dropout (Bone).</param>
    protected ShardSharingLayer(string name, BaseLayer baseLayer, string blockKey, string? dropoutKey) : base(name, baseLayer)
    {
        _blockKey = blockKey;
        if (dropoutKey is not null)
        {
            _dropout = new AdapterModuleDict();
            register_module(dropoutKey, _dropout);
        }
        register_module(blockKey, _blocks);
    }

    /// <summary>The config of one adapter.</summary>
    public ShardSharingConfig ConfigOf(string adapterName) => _configs[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (ShardSharingConfig)config;
        var r = c.Rank;
        var inF = Base.InFeatures;
        var outF = Base.OutFeatures;
        long[] shape;
        switch (c.InitWeights)
        {
            case ShardInit.Bat:
                if (inF % r != 0 || outF % r != 0)
                {
                    throw new PeftException($"{PeftType} init_weights \"bat\" cuts the weight into r×r blocks, so r = {r} must divide " +
                        $"in_features and out_features; this Linear is {inF} → {outF}");
                }
                shape = [outF / r, r, r];
                break;
            case ShardInit.Mini:
                if (outF % c.MiniRank != 0)
                {
                    throw new PeftException($"{PeftType} init_weights \"mini\" tiles the block along the output, so mini_r = {c.MiniRank} " +
                        $"must divide out_features = {outF}");
                }
                shape = [r, c.MiniRank];
                break;
            default:
                shape = [r, outF];
                break;
        }
        var block = new Parameter(torch.zeros(shape, dtype: Base.DType, device: Base.Device));
        if (c.InitWeights == ShardInit.Random)
        {
            using var _ = torch.no_grad();
            nn.init.kaiming_uniform_(block, Math.Sqrt(5));
        }
        _blocks.Set(adapterName, block);
        _dropout?.Set(adapterName, c.DropoutProbability > 0 ? nn.Dropout(c.DropoutProbability) : nn.Identity());
        _configs[adapterName] = c;
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _blocks.Remove(adapterName);
        _dropout?.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result)
    {
        var block = _blocks[adapterName];
        var input = x.dtype == block.dtype ? x : x.to(block.dtype);
        if (_configs[adapterName].InitWeights == ShardInit.Bat)
        {
            var delta = ShardMath.BatDelta(WeightBefore(adapterName), block);
            return result + nn.functional.linear(input, delta);
        }
        var d = SharedBlock(adapterName);
        var r = d.shape[0];
        var padded = ShardMath.PadToShards(input, r);
        if (_dropout is not null)
        {
            padded = _dropout[adapterName].call(padded);
        }
        return result + ShardMath.SumShards(padded, r).matmul(d);
    }

    /// <summary>
    /// ΔW <c>[d_out, d_in]</c> that merging the adapter now would add. Balance/mini: the tiled Dᵀ. Bat: <c>W·b + b</c> for the
    /// current base weight (it depends on W, so it is only meaningful while the adapter is not merged).
    /// </summary>
    public override Tensor? DeltaWeight(string adapterName) => DeltaFor(adapterName, Base.Weight);

    protected override void UnmergeFrom(string adapterName)
    {
        if (_configs[adapterName].InitWeights != ShardInit.Bat)
        {
            base.UnmergeFrom(adapterName);
            return;
        }
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var w = Base.Weight;
        var restored = ShardMath.BatUnmerge(Compute(w), Compute(_blocks[adapterName]), $"{PeftType} adapter '{adapterName}'");
        w.copy_(restored.to(w.dtype));
    }

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) =>
        new Dictionary<string, Tensor> { [_blockKey] = _blocks[adapterName] };

    // ΔW of one adapter relative to weight w, computed in fp32 for half-precision weights (PEFT casts on CPU too).
    private Tensor DeltaFor(string adapterName, Tensor w)
    {
        if (_configs[adapterName].InitWeights == ShardInit.Bat)
        {
            return ShardMath.BatDelta(Compute(w), Compute(_blocks[adapterName]));
        }
        return ShardMath.SharedDelta(Compute(SharedBlock(adapterName)), Base.InFeatures);
    }

    // The base weight as seen by a bat adapter: the adapters before it in the active order, unmerged ones applied in turn,
    // so that merging them in that order gives the same weight.
    private Tensor WeightBefore(string adapterName)
    {
        var block = _blocks[adapterName];
        var w = Base.Weight.to(block.dtype);
        foreach (var other in ActiveAdapters)
        {
            if (other == adapterName)
            {
                break;
            }
            if (!MergedAdapters.Contains(other) && _configs.ContainsKey(other))
            {
                w = w + (_configs[other].InitWeights == ShardInit.Bat
                    ? ShardMath.BatDelta(w, _blocks[other].to(block.dtype))
                    : ShardMath.SharedDelta(SharedBlock(other).to(block.dtype), Base.InFeatures));
            }
        }
        return w;
    }

    // D [r, d_out]: the block itself, or the mini block tiled along the output.
    private Tensor SharedBlock(string adapterName)
    {
        var block = _blocks[adapterName];
        return _configs[adapterName].InitWeights == ShardInit.Mini ? ShardMath.TileMini(block, Base.OutFeatures) : block;
    }

    private static Tensor Compute(Tensor t) => t.dtype is ScalarType.Float16 or ScalarType.BFloat16 ? t.to(ScalarType.Float32) : t;
}
