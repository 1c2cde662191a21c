using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>
/// <c>rope_scaling</c> of a Llama-family config. <see cref="Type"/> is <c>default</c>, <c>linear</c>, <c>dynamic</c>,
/// <c>llama3</c> or <c>yarn</c> (transformers' <c>ROPE_INIT_FUNCTIONS</c> names); the other fields are read only by the
/// types that use them.
/// </summary>
public sealed record RopeScaling(
    string Type, double Factor = 1, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 0,
    double BetaFast = 32, double BetaSlow = 1, double? AttentionFactor = null)
{
    /// <summary>The supported <c>rope_type</c> values.</summary>
    public static IReadOnlyList<string> SupportedTypes { get; } = ["default", "linear", "dynamic", "llama3", "yarn"];

    // YaRN keys whose meaning changed between transformers versions (4.48 ignores them; later versions derive the factor
    // from original_max_position_embeddings and the attention factor from mscale): refused rather than guessed.
    private static readonly string[] s_yarnVersionDependent = ["original_max_position_embeddings", "mscale", "mscale_all_dim", "truncate"];

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
        if (type == "yarn")
        {
            return ParseYarn(obj, factor, config);
        }
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

    private static RopeScaling ParseYarn(JsonObject obj, double factor, ModelConfig config)
    {
        if (s_yarnVersionDependent.FirstOrDefault(k => obj[k] is not null) is { } key)
        {
            throw new ConfigException(
                $"{config.Source}: rope_scaling.{key} (yarn) is not supported: transformers versions disagree on what it does");
        }
        if (factor < 1)
        {
            throw new ConfigException($"{config.Source}: rope_scaling.factor must be 1 or more for yarn, got {factor}");
        }
        return new RopeScaling("yarn", factor,
            BetaFast: Number(obj, "beta_fast", config) ?? 32,
            BetaSlow: Number(obj, "beta_slow", config) ?? 1,
            AttentionFactor: Number(obj, "attention_factor", config));
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
    private readonly double _attentionScaling;

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
        // YaRN scales cos and sin ("attention_factor", default 0.1·ln(factor) + 1); 1 for every other type.
        _attentionScaling = scaling.Type == "yarn" ? scaling.AttentionFactor ?? 0.1 * Math.Log(scaling.Factor) + 1.0 : 1.0;
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
        var (cos, sin) = (emb.cos(), emb.sin());
        if (_attentionScaling != 1.0)
        {
            (cos, sin) = (cos * _attentionScaling, sin * _attentionScaling);
        }
        (cos, sin) = (cos.to_type(dtype), sin.to_type(dtype));
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
                "yarn" => Yarn(inv, theta),
                _ => inv,
            };
        }
        return inv.data<float>().ToArray();
    }

    private Tensor Yarn(Tensor invFreq, double theta)
    {
        // transformers' _compute_yarn_parameters (the keys every version reads alike): dimensions that rotate fewer than
        // beta_slow times over max_position_embeddings are interpolated (divided by the factor), those rotating more than
        // beta_fast times kept, with a linear ramp between the two correction dimensions.
        var s = _scaling;
        double CorrectionDim(double rotations) =>
            _headDim * Math.Log(_maxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        var low = Math.Max(Math.Floor(CorrectionDim(s.BetaFast)), 0);
        var high = Math.Min(Math.Ceiling(CorrectionDim(s.BetaSlow)), _headDim - 1);
        if (low == high)
        {
            high += 0.001;
        }
        var ramp = ((torch.arange(_headDim / 2, dtype: ScalarType.Float32) - low) / (high - low)).clamp(0, 1);
        var extrapolation = 1 - ramp;
        return invFreq / s.Factor * (1 - extrapolation) + invFreq * extrapolation;
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
