using System.Text.Json.Nodes;
using PeftSharp.Models.Common;

namespace PeftSharp.Models.Llama;

/// <summary>The three decoders sharing one implementation; they differ in biases, defaults and sliding windows.</summary>
public enum DecoderFamily
{
    /// <summary>transformers' <c>llama</c>: <c>attention_bias</c> on q/k/v/o, <c>mlp_bias</c> on the MLP.</summary>
    Llama,

    /// <summary>transformers' <c>qwen2</c>: q/k/v always biased, o_proj never; MLP without bias.</summary>
    Qwen2,

    /// <summary>transformers' <c>mistral</c>: no biases; <c>sliding_window</c>.</summary>
    Mistral,
}

/// <summary>
/// Typed view of a Llama / Qwen2 / Mistral <c>config.json</c>. Shape keys (<c>vocab_size</c>, <c>hidden_size</c>,
/// <c>intermediate_size</c>, <c>num_hidden_layers</c>, <c>num_attention_heads</c>) are required; other keys take the
/// default of the family's transformers config class.
/// </summary>
public sealed record LlamaConfig
{
    public required DecoderFamily Family { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }

    /// <summary><c>num_key_value_heads</c>; transformers uses <c>num_attention_heads</c> when it is absent (no GQA).</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary><c>head_dim</c>, or <c>hidden_size / num_attention_heads</c> when absent.</summary>
    public required int HeadDim { get; init; }

    public required double RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public required RopeScaling RopeScaling { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required string HiddenAct { get; init; }
    public required bool TieWordEmbeddings { get; init; }

    /// <summary>Bias on q_proj/k_proj/v_proj.</summary>
    public required bool QkvBias { get; init; }

    /// <summary>Bias on o_proj.</summary>
    public required bool OutputBias { get; init; }

    /// <summary>Bias on gate_proj/up_proj/down_proj.</summary>
    public required bool MlpBias { get; init; }

    /// <summary>Attention window in positions for the layers of <see cref="SlidingLayers"/>, else null.</summary>
    public required int? SlidingWindow { get; init; }

    /// <summary>
    /// Per layer: true where it attends only to the last <see cref="SlidingWindow"/> positions (transformers'
    /// <c>layer_types</c> entry <c>"sliding_attention"</c>).
    /// </summary>
    public required IReadOnlyList<bool> SlidingLayers { get; init; }

    public required int? PadTokenId { get; init; }

    /// <summary>Reads the typed view, validating head counts.</summary>
    public static LlamaConfig From(ModelConfig c, DecoderFamily family)
    {
        var hidden = c.RequireInt("hidden_size");
        var heads = c.RequireInt("num_attention_heads");
        var kvHeads = c.GetOptionalInt("num_key_value_heads") ?? heads;
        var layers = c.RequireInt("num_hidden_layers");
        int headDim;
        if (c.GetOptionalInt("head_dim") is int hd)
        {
            headDim = hd;
        }
        else
        {
            if (heads <= 0 || hidden % heads != 0)
            {
                throw new ConfigException(
                    $"{c.Source}: 'head_dim' is missing and hidden_size {hidden} is not divisible by num_attention_heads {heads}");
            }
            headDim = hidden / heads;
        }
        if (kvHeads <= 0 || heads % kvHeads != 0)
        {
            throw new ConfigException(
                $"{c.Source}: num_attention_heads {heads} must be a multiple of num_key_value_heads {kvHeads}");
        }
        var attentionBias = c.GetBool("attention_bias", false);
        var (window, slidingLayers) = ReadSlidingWindow(c, family, layers);
        return new LlamaConfig
        {
            Family = family,
            VocabSize = c.RequireInt("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = c.RequireInt("intermediate_size"),
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = c.GetDouble("rms_norm_eps", 1e-6),
            RopeTheta = c.GetDouble("rope_theta", 10000.0),
            RopeScaling = RopeScaling.Parse(c),
            MaxPositionEmbeddings = c.GetOptionalInt("max_position_embeddings") ?? family switch
            {
                DecoderFamily.Qwen2 => 32768,
                DecoderFamily.Mistral => 4096 * 32,
                _ => 2048,
            },
            HiddenAct = c.GetString("hidden_act") ?? "silu",
            TieWordEmbeddings = c.GetBool("tie_word_embeddings", false),
            QkvBias = family switch
            {
                DecoderFamily.Qwen2 => true,
                DecoderFamily.Mistral => false,
                _ => attentionBias,
            },
            OutputBias = family == DecoderFamily.Llama && attentionBias,
            MlpBias = family == DecoderFamily.Llama && c.GetBool("mlp_bias", false),
            SlidingWindow = window,
            SlidingLayers = slidingLayers,
            PadTokenId = c.PadTokenId,
        };
    }

    // transformers' rules: Mistral windows every layer (sliding_window, default 4096; null disables it); Qwen2 only with
    // use_sliding_window, on the layers from max_window_layers on (default 28); an explicit layer_types list wins.
    private static (int? Window, bool[] Layers) ReadSlidingWindow(ModelConfig c, DecoderFamily family, int layers)
    {
        int? window = family switch
        {
            DecoderFamily.Mistral => c.Raw.ContainsKey("sliding_window") ? c.GetOptionalInt("sliding_window") : 4096,
            DecoderFamily.Qwen2 when c.GetBool("use_sliding_window", false) =>
                c.Raw.ContainsKey("sliding_window") ? c.GetOptionalInt("sliding_window") : 4096,
            _ => null,
        };
        if (window is int w && w < 1)
        {
            throw new ConfigException($"{c.Source}: 'sliding_window' must be a positive number of positions, got {w}");
        }
        var sliding = new bool[layers];
        if (c.Raw["layer_types"] is JsonNode node)
        {
            var types = node as JsonArray;
            if (types is null || types.Count != layers)
            {
                throw new ConfigException(
                    $"{c.Source}: 'layer_types' must list one type per layer ({layers}), got {node.ToJsonString()}");
            }
            for (var i = 0; i < layers; i++)
            {
                var type = types[i] is JsonValue v && v.TryGetValue<string>(out var t) ? t : null;
                sliding[i] = type switch
                {
                    "sliding_attention" => true,
                    "full_attention" => false,
                    _ => throw new ConfigException($"{c.Source}: layer_types[{i}] is {types[i]?.ToJsonString() ?? "null"}; "
                        + "expected \"full_attention\" or \"sliding_attention\""),
                };
            }
            // A "sliding_attention" layer without a window attends to everything, as in transformers.
            return window is null ? (null, new bool[layers]) : (window, sliding);
        }
        if (window is null)
        {
            return (null, sliding);
        }
        var from = family == DecoderFamily.Qwen2 ? c.GetOptionalInt("max_window_layers") ?? 28 : 0;
        for (var i = from < 0 ? 0 : from; i < layers; i++)
        {
            sliding[i] = true;
        }
        return (window, sliding);
    }
}
