using System.Text.Json.Nodes;
using PeftSharp.Models;
using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Models;

/// <summary>
/// YaRN rope scaling. Expected inverse frequencies come from a separate float64 Python transcription of transformers'
/// <c>_compute_yarn_parameters</c> (the values below), not from this code; cos and sin are scaled by the attention
/// factor (default 0.1·ln(factor) + 1).
/// </summary>
public class RopeScalingTests
{
    private static ModelConfig Config(JsonObject ropeScaling) => ModelConfig.Parse(new JsonObject
    {
        ["model_type"] = "llama",
        ["rope_scaling"] = ropeScaling,
    }.ToJsonString(), "test/config.json");

    private static double[] InvFreq(RotaryEmbedding rope, int headDim)
    {
        // cos at position 1 over the attention factor is cos(inv_i); sin/cos gives tan, so atan2 recovers inv_i < π.
        var (cos, sin) = rope.CosSin(torch.ones(1, 1, dtype: ScalarType.Int64), ScalarType.Float64);
        var c = cos[0, 0, 0].narrow(0, 0, headDim / 2);
        var s = sin[0, 0, 0].narrow(0, 0, headDim / 2);
        return torch.atan2(s, c).data<double>().ToArray();
    }

    [Theory]
    [InlineData(4.0, 128, null, null, new[] { 1.000000000e+00, 2.371708245e-01, 5.000000000e-02, 7.905694150e-03, 2.500000000e-03, 7.905694150e-04, 2.500000000e-04, 7.905694150e-05 })]
    [InlineData(8.0, 64, 16.0, 2.0, new[] { 1.000000000e+00, 1.778781184e-01, 1.250000000e-02, 3.952847075e-03, 1.250000000e-03, 3.952847075e-04, 1.250000000e-04, 3.952847075e-05 })]
    public void Yarn_inverse_frequencies_match_the_reference_transcription(double factor, int maxPositions, double? betaFast, double? betaSlow, double[] expected)
    {
        var obj = new JsonObject { ["rope_type"] = "yarn", ["factor"] = factor };
        if (betaFast is double bf)
        {
            obj["beta_fast"] = bf;
            obj["beta_slow"] = betaSlow;
        }
        var scaling = RopeScaling.Parse(Config(obj));
        var rope = new RotaryEmbedding(16, 10000, scaling, maxPositions);
        var got = InvFreq(rope, 16);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-6 * expected[i] + 1e-9, $"inv_freq[{i}]: {got[i]} vs {expected[i]}");
        }
    }

    [Fact]
    public void Yarn_scales_cos_and_sin_by_the_attention_factor()
    {
        var positions = torch.tensor(new long[] { 0, 3 }).unsqueeze(0);
        var plain = new RotaryEmbedding(16, 10000, RopeScaling.Parse(Config(new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 })), 128);
        var (cos, _) = plain.CosSin(positions, ScalarType.Float64);
        // Position 0: cos = 1 everywhere, times 0.1·ln 4 + 1.
        Assert.Equal(0.1 * Math.Log(4) + 1, cos[0, 0, 0, 0].item<double>(), 6);
        var given = new RotaryEmbedding(16, 10000, RopeScaling.Parse(Config(new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0, ["attention_factor"] = 0.5 })), 128);
        Assert.Equal(0.5, given.CosSin(positions, ScalarType.Float64).Cos[0, 0, 0, 0].item<double>(), 6);
    }

    [Theory]
    [InlineData("original_max_position_embeddings")]
    [InlineData("mscale")]
    [InlineData("mscale_all_dim")]
    public void Yarn_keys_whose_meaning_differs_between_transformers_versions_are_refused(string key)
    {
        var e = Assert.Throws<ConfigException>(() => RopeScaling.Parse(Config(new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0, [key] = 2 })));
        Assert.Contains("test/config.json", e.Message);
        Assert.Contains(key, e.Message);
    }
}
