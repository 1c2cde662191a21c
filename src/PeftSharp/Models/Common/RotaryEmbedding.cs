using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>
/// <c>rope_scaling</c> of a Llama-family config. <see cref="Type"/> is <c>default</c>, <c>linear</c>, <c>dynamic</c> or
/// <c>llama3</c> (transformers' <c>ROPE_INIT_FUNCTIONS</c> names); the other fields are read only by the types that use them.
/// </summary>
public sealed record RopeScaling(string Type, double Factor = 1, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 0)
{
    /// <summary>The supported <c>rope_type</c> values.</summary>
    public static IReadOnlyList<string> SupportedTypes { get; } = ["default", "linear", "dynamic", "llama3"];

    /// <summary>Reads <c>rope_scaling</c> (null or absent: plain RoPE). <c>rope_type</c> or the older <c>type</c> key names the type.</summary>
    public static RopeScaling Parse(ModelConfig config)
    {
        var obj = config.GetObject("rope_scaling");
        if (obj is null)
        {
            return new RopeScaling("default");
        }
        var type = (obj["rope_type"] ?? obj["type"])?.GetValue<string>()
            ?? throw new ConfigException($"{config.Source}: 'rope_scaling' has no 'rope_type'");
        if (!SupportedTypes.Contains(type))
        {
            throw new ConfigException(
                $"{config.Source}: rope_scaling type '{type}' is not supported; supported: {string.Join(", ", SupportedTypes)}");
        }
        if (type == "default")
        {
            return new RopeScaling(type);
        }
        var factor = Number(obj, "factor", config) ?? throw Missing("factor", config);
        if (type != "llama3")
        {
            return new RopeScaling(type, factor);
        }
        return new RopeScaling(
            type,
            factor,
            Number(obj, "low_freq_factor", config) ?? throw Missing("low_freq_factor", config),
            Number(obj, "high_freq_factor", config) ?? throw Missing("high_freq_factor", config),
            (int)(Number(obj, "original_max_position_embeddings", config) ?? throw Missing("original_max_position_embeddings", config)));
    }

    private static double? Number(JsonObject obj, string key, ModelConfig config)
    {
        var node = obj[key];
        if (node is null)
        {
            return null;
        }
        if (node is JsonValue v && v.TryGetValue<double>(out var d))
        {
            return d;
        }
        throw new ConfigException($"{config.Source}: rope_scaling.{key} must be a number, got {node.ToJsonString()}");
    }

    private static ConfigException Missing(string key, ModelConfig config) =>
        new($"{config.Source}: rope_scaling.{key} is missing");
}

/// <summary>
/// Rotary position embedding with transformers' half-split layout (<c>rotate_half</c>: the pair is
/// <c>(x[i], x[i + D/2])</c>), frequencies <c>θ^(-2i/D)</c> adjusted by <see cref="RopeScaling"/>. Not a module and
/// holds no tensor: the inverse frequencies are kept as a managed array and cos/sin are computed in every forward on
/// the input's device, so nothing becomes a buffer in the state dict.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly int _headDim;
    private readonly double _theta;
    private readonly RopeScaling _scaling;
    private readonly int _maxPositionEmbeddings;
    private readonly float[] _baseInvFreq;

    /// <param name="headDim">Rotated dimension per head (even).</param>
    /// <param name="theta"><c>rope_theta</c>.</param>
    /// <param name="scaling"><c>rope_scaling</c>.</param>
    /// <param name="maxPositionEmbeddings"><c>max_position_embeddings</c> (used by <c>dynamic</c> scaling).</param>
    public RotaryEmbedding(int headDim, double theta, RopeScaling scaling, int maxPositionEmbeddings)
    {
        if (headDim % 2 != 0)
        {
            throw new ConfigException($"rotary embedding needs an even head_dim, got {headDim}");
        }
        _headDim = headDim;
        _theta = theta;
        _scaling = scaling;
        _maxPositionEmbeddings = maxPositionEmbeddings;
        _baseInvFreq = ComputeInvFreq(theta);
    }

    /// <summary>
    /// cos and sin <c>[B, 1, T, D]</c> in <paramref name="dtype"/> for position ids <c>[B, T]</c>, computed in float32
    /// (as transformers' <c>LlamaRotaryEmbedding.forward</c>) and then cast.
    /// </summary>
    public (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var invFreq = InvFreqFor(positionIds);
        using var inv = torch.tensor(invFreq, device: positionIds.device);
        // [B, T, 1] * [D/2] -> [B, T, D/2]; one product per entry, as transformers' K=1 matmul.
        var freqs = positionIds.to_type(ScalarType.Float32).unsqueeze(-1) * inv;
        var emb = torch.cat([freqs, freqs], -1).unsqueeze(1);
        var cos = emb.cos().to_type(dtype);
        var sin = emb.sin().to_type(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>Rotates <paramref name="x"/> <c>[B, H, T, D]</c>: <c>x·cos + rotate_half(x)·sin</c>.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = torch.NewDisposeScope();
        var half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = torch.cat([-x2, x1], -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }

    private float[] InvFreqFor(Tensor positionIds)
    {
        if (_scaling.Type != "dynamic")
        {
            return _baseInvFreq;
        }
        // transformers' dynamic NTK: base grows with the sequence once it exceeds max_position_embeddings
        // (_compute_dynamic_ntk_parameters). transformers also keeps the grown base for later shorter calls until
        // they drop below the original length; here each call uses its own length (identical for growing decodes).
        var seqLen = positionIds.numel() == 0 ? 0 : positionIds.max().item<long>() + 1;
        if (seqLen <= _maxPositionEmbeddings)
        {
            return _baseInvFreq;
        }
        var factor = _scaling.Factor;
        var theta = _theta * Math.Pow(factor * seqLen / _maxPositionEmbeddings - (factor - 1), _headDim / (_headDim - 2.0));
        return ComputeInvFreq(theta, applyScaling: false);
    }

    private float[] ComputeInvFreq(double theta, bool applyScaling = true)
    {
        using var scope = torch.NewDisposeScope();
        // Same float32 ops as transformers: 1 / theta ** (arange(0, D, 2).float() / D).
        var exponents = torch.arange(0, _headDim, 2, dtype: ScalarType.Int64).to_type(ScalarType.Float32) / _headDim;
        var inv = torch.pow(theta, exponents).reciprocal();
        if (applyScaling)
        {
            inv = _scaling.Type switch
            {
                "linear" => inv / _scaling.Factor,
                "llama3" => Llama3(inv),
                _ => inv,
            };
        }
        return inv.data<float>().ToArray();
    }

    private Tensor Llama3(Tensor invFreq)
    {
        // transformers' _compute_llama3_parameters: long wavelengths are divided by the factor, short ones kept,
        // the band in between interpolated.
        var s = _scaling;
        var lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        var highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        var wavelen = 2 * Math.PI / invFreq;
        var scaled = torch.where(wavelen > lowFreqWavelen, invFreq / s.Factor, invFreq);
        var smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        var smoothed = (1 - smooth) * scaled / s.Factor + smooth * scaled;
        var isMedium = (wavelen >= highFreqWavelen).logical_and(wavelen <= lowFreqWavelen);
        return torch.where(isMedium, smoothed, scaled);
    }
}
